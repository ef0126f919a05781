"""State files: written atomically (temp file + rename), readable only by the owner."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def ensure_dir(path: Path) -> None:
    """Create ``path`` and every missing parent as 0700 (mkdir's parents=True would make the parents
    with the default mode, 0755 under the usual umask). Existing directories are left as they are."""
    missing = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:   # made meanwhile by a parallel writer
            pass


def make_private(path: Path) -> None:
    """A state directory ccp made earlier with wider permissions is narrowed to 0700."""
    try:
        if path.is_dir() and path.stat().st_mode & 0o077:
            path.chmod(0o700)
    except OSError:
        pass


def atomic_write(path: Path, text: str, *, fsync: bool = True, mode: int = 0o600) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
