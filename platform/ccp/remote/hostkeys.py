"""Strict host-key checking without silent auto-accept.

A host's key is either known beforehand (spec.ssh.knownHostsFile, OpenSSH format) or pinned on first
contact: the fingerprint is shown, written to <state>/known_hosts and journaled by the phase. A later
different key is refused — never replaced — with both fingerprints in the error.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ccp.engine.files import atomic_write, ensure_dir


class HostKeyMismatch(Exception):
    def __init__(self, host: str, pinned: str, offered: str):
        self.host, self.pinned, self.offered = host, pinned, offered
        super().__init__(f"{host} presented host key {offered}, but {pinned} is pinned for it")


class HostKeys:
    def __init__(self, state_file: Path, preset: Path | None = None, on_pin=None):
        self.path = state_file
        self.on_pin = on_pin or (lambda host, fingerprint: None)
        self._lock = threading.Lock()
        self.keys: dict[str, str] = {}          # "host" or "[host]:port" -> "alg base64"
        self.mismatches: list[HostKeyMismatch] = []
        self.pinned_now: dict[str, str] = {}    # host -> fingerprint, pinned during this run
        for source in (preset, state_file):
            if source is not None and source.exists():
                self.keys.update(_read(source))

    @staticmethod
    def label(host: str, port: int) -> str:
        return host if port == 22 else f"[{host}]:{port}"

    def check(self, host: str, port: int, key) -> bool:
        """asyncssh's validate_host_public_key: True to trust ``key`` for host:port."""
        label = self.label(host, port)
        offered = key.export_public_key("openssh").decode().split()[:2]
        offered_text = " ".join(offered)
        with self._lock:
            known = self.keys.get(label)
            if known is None:
                self.keys[label] = offered_text
                self._save()
                fp = key.get_fingerprint("sha256")
                self.pinned_now[label] = fp
                self.on_pin(label, fp)
                return True
            if known == offered_text:
                return True
            from asyncssh import import_public_key

            pinned_fp = import_public_key(known).get_fingerprint("sha256")
            self.mismatches.append(HostKeyMismatch(label, pinned_fp, key.get_fingerprint("sha256")))
            return False

    def _save(self) -> None:
        ensure_dir(self.path.parent)
        atomic_write(self.path, "".join(f"{h} {k}\n" for h, k in sorted(self.keys.items())))


def _read(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#"):
            for host in parts[0].split(","):
                out[host] = f"{parts[1]} {parts[2]}"
    return out


def pin_known(state_file: Path, keys: dict[str, str]) -> dict[str, str]:
    """Pin host keys that ccp read from the machines themselves (a local machine's own disk), replacing
    any older pin for those addresses: the machine was made anew by this run, not impersonated.
    ``keys``: label -> "alg base64". Returns the labels whose pin changed."""
    current = _read(state_file) if state_file.exists() else {}
    changed = {label: key for label, key in keys.items() if current.get(label) != key}
    if changed:
        current.update(changed)
        ensure_dir(state_file.parent)
        atomic_write(state_file, "".join(f"{h} {k}\n" for h, k in sorted(current.items())))
    return changed
