"""The cluster's encryption keys in the state directory, by name, so that a crash at any point of a change
(`ccp secrets rotate-key`, `ccp apply` turning encryption on, `ccp restore`) never loses a key the data is
encrypted with:

  <state>/secrets/encryption-key              the key the cluster encrypts with (what `ccp install` made)
  <state>/secrets/encryption-keys/<name>      every key in use on a control plane, by its name in the
                                              EncryptionConfiguration (ccp-1, ccp-2, ...): also the one above

Each file is one base64 line, 0600, in 0700 directories, written atomically (a temporary file renamed). A key
is added here before it reaches any control plane and removed only after no control plane holds it any more.
A state directory from before key names (only encryption-key) holds ccp-1; its keyring is written out at the
first change. Every key read is registered for masking at once.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from pathlib import Path

from ccp import redact
from ccp.errors import ConfigError, InternalError
from ccp.render_security import KEY_NAME

KEY_BYTES = 32
PRIMARY = "encryption-key"
KEYS = "encryption-keys"
_NAME = re.compile(r"^ccp-(\d+)$")                      # the names ccp gives its keys
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")   # any key name a file can be named after (a hand-made key's)


def secrets_dir(state_dir: Path) -> Path:
    return state_dir / "secrets"


def primary_path(state_dir: Path) -> Path:
    return secrets_dir(state_dir) / PRIMARY


def is_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def new_key() -> str:
    key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
    redact.register(key)
    return key


def _read(path: Path) -> str | None:
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"the encryption key {path} cannot be read: {exc.strerror}",
                          "run ccp as the user that owns the state directory") from None
    redact.register(key)
    if not is_key(key):
        raise ConfigError(f"{path} does not hold a {KEY_BYTES}-byte base64 key",
                          "restore it from a backup of the state directory: the cluster's Secrets can only be read "
                          "with the key they were written with")
    return key


def primary_key(state_dir: Path) -> str | None:
    return _read(primary_path(state_dir))


def keys(state_dir: Path) -> dict[str, str]:
    """{name: key} of every key kept (a state directory from before key names: its one key as ccp-1)."""
    d = secrets_dir(state_dir) / KEYS
    found = {p.name: _read(p) for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")} if d.is_dir() else {}
    first = primary_key(state_dir)
    if first is not None and first not in found.values():
        if KEY_NAME in found:
            raise ConfigError(f"{primary_path(state_dir)} is none of the keys in {d}",
                              f"restore {d} and {PRIMARY} together from one backup of the state directory")
        found[KEY_NAME] = first
    return found


def primary(state_dir: Path) -> tuple[str, str] | None:
    """(name, key) the cluster encrypts with, or None when no key was made yet."""
    first = primary_key(state_dir)
    if first is None:
        return None
    return next((n, k) for n, k in keys(state_dir).items() if k == first)


def is_name(name: str) -> bool:
    """A key name the keyring can keep: ccp's own (ccp-1, ccp-2, ...) or a hand-made key's."""
    return bool(_SAFE.match(name))


def next_name(names) -> str:
    """The name after every ccp-N in ``names``: key names are never reused (they are in the stored data)."""
    numbers = [int(m.group(1)) for n in names if (m := _NAME.match(n))]
    return f"ccp-{max(numbers, default=0) + 1}"


def _write(state_dir: Path, path: Path, key: str) -> None:
    from ccp.engine.files import atomic_write, ensure_dir, make_private

    ensure_dir(path.parent)
    make_private(secrets_dir(state_dir))
    make_private(path.parent)
    atomic_write(path, key + "\n", mode=0o600)


def store(state_dir: Path, name: str, key: str) -> None:
    """Keep ``key`` as ``name`` before it is used anywhere. A cluster's first key, ccp-1, is encryption-key alone
    (as before key names); the keyring is written out at the first change, that key first."""
    if not is_name(name):
        raise ConfigError(f"an encryption key is named {name!r}: ccp cannot keep it in {secrets_dir(state_dir) / KEYS}",
                          "rename it on every control plane (letters, digits, '.', '_', '-'), or rotate it away")
    held = keys(state_dir)
    if held.get(name, key) != key:
        raise ConfigError(f"the state directory holds another key named {name}",
                          "two clusters' keys met: restore this cluster's <state>/secrets from its backup")
    if not held and name == KEY_NAME:
        _write(state_dir, primary_path(state_dir), key)
        return
    ring = secrets_dir(state_dir) / KEYS
    for n, k in {**held, name: key}.items():
        if not (ring / n).exists():
            _write(state_dir, ring / n, k)
    if primary_key(state_dir) is None:
        _write(state_dir, primary_path(state_dir), key)


def make_primary(state_dir: Path, name: str) -> None:
    """From now on ``name`` is the key the cluster encrypts with (it stays in the keyring under its name)."""
    held = keys(state_dir)
    if name not in held:
        raise InternalError(f"the key {name} is not in {secrets_dir(state_dir) / KEYS}", "this is a ccp bug; report it")
    store(state_dir, name, held[name])
    if primary_key(state_dir) != held[name]:
        _write(state_dir, primary_path(state_dir), held[name])


def forget(state_dir: Path, names) -> list[str]:
    """Remove keys no control plane holds any more (never the one the cluster encrypts with); -> those removed."""
    first = primary(state_dir)
    gone = []
    for name in names:
        if first is not None and name == first[0]:
            raise InternalError(f"refusing to remove {name}: the cluster encrypts with it", "this is a ccp bug; report it")
        path = secrets_dir(state_dir) / KEYS / name
        if path.exists():
            path.unlink()
            gone.append(name)
    return gone
