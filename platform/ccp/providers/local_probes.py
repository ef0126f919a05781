"""What the local machines read from this host: a process's state, mounts below a path, the cgroup
hierarchies, an SSH banner. Read-only, standard library only."""

from __future__ import annotations

from pathlib import Path


def _proc(pid: int | None) -> tuple[str, int] | None:
    """(state, start time) of a process, None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, TypeError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[0], int(fields[19])


def mounts_below(path: Path) -> list[str]:
    root, lines = str(path), Path("/proc/self/mountinfo").read_text().splitlines()
    return sorted({m for m in (ln.split()[4] for ln in lines) if m == root or m.startswith(root + "/")}, key=len, reverse=True)


def cgroup_hierarchies() -> list[Path]:
    """Mount points of this host's cgroup hierarchies (v1 controllers, named ones, the unified one)."""
    seen: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, fstype = line.split(), line.partition(" - ")[2].split()[0]
        if fstype in ("cgroup", "cgroup2"):
            seen.setdefault(fields[2], Path(fields[4]))
    return list(seen.values())


def ssh_answers(address: str, timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.create_connection((address, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False
