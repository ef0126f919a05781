"""Backup before an upgrade (and `ccp backup`): an etcd snapshot taken inside the first control
plane's etcd container, verified with `etcdutl snapshot status`, the PKI directory, and the encryption
configuration that control plane's API server reads (the keys the snapshot's Secrets are stored with), saved
under <state>/backups/<timestamp>/ with mode 0600. The snapshot holds the cluster's Secrets: it never
leaves the state directory and is never logged; the keys go nowhere else either (backup.json names them)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

from ccp.engine.files import atomic_write, ensure_dir
from ccp.errors import RemoteError
from ccp.remote.etcd import CERTS, ETCD

SNAPSHOT = "/var/lib/etcd/ccp-backup.db"   # inside etcd's data dir: the etcd container and the host both see it
TAKE = (f"set -e; rm -f {SNAPSHOT}; {ETCD} etcdctl {CERTS} snapshot save {SNAPSHOT} >/dev/null; "
        f"{ETCD} etcdutl snapshot status {SNAPSHOT} -w json")
FETCH = f"set -e; sha256sum {SNAPSHOT} | cut -d' ' -f1; base64 -w0 {SNAPSHOT}; echo; rm -f {SNAPSHOT}"
PKI = "set -e; tar -C /etc/kubernetes -czf - pki | base64 -w0; echo"
ENCRYPTION = "encryption-config.yaml"   # in the backup directory, beside the snapshot


def backup(ctx, *, say=lambda text: None, keep: int | None = None) -> Path:
    from ccp.cluster.facts import acting_first

    first = acting_first(ctx)
    (t,) = ctx.targets([first])
    ssh = ctx.ssh()
    say(f"{first}: etcd snapshot")
    r = ssh.call(ssh.run(t, TAKE, sudo=True, check=False, timeout=600, quiet=True))
    try:
        status = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RemoteError(f"{first}: the etcd snapshot failed or could not be verified (exit {r.exit_status})",
                          "check that etcd runs on it (crictl ps --name etcd, or ctr -n k8s.io tasks ls) and that /var/lib/etcd has room",
                          (r.stderr or r.stdout).splitlines()[-5:]) from None
    r = ssh.call(ssh.run(t, FETCH, sudo=True, check=True, timeout=1800, quiet=True))
    digest, _, data = r.stdout.strip().partition("\n")
    blob = base64.b64decode(data)
    if hashlib.sha256(blob).hexdigest() != digest.strip():
        raise RemoteError(f"{first}: the etcd snapshot arrived damaged (sha256 differs)", "run `ccp backup` again")
    pki = base64.b64decode(ssh.call(ssh.run(t, PKI, sudo=True, check=True, timeout=300, quiet=True)).stdout.strip())
    keys_text, key_names = _encryption(ctx, ssh, t)
    root = ctx.state_dir / "backups"
    where = root / time.strftime("%Y%m%dT%H%M%S")
    n = 1
    while where.exists():   # two backups within a second keep both
        n += 1
        where = root / f"{time.strftime('%Y%m%dT%H%M%S')}-{n}"
    ensure_dir(where)
    _write_bytes(where / "etcd-snapshot.db", blob)
    _write_bytes(where / "pki.tar.gz", pki)
    if keys_text is not None:
        _write_bytes(where / ENCRYPTION, keys_text.encode())
    atomic_write(where / "backup.json", json.dumps({"node": first, "sha256": digest.strip(), "bytes": len(blob),
                                                    "etcdStatus": status, "kubernetes": ctx.config.spec.kubernetes.version,
                                                    "encryptionKeys": key_names}, indent=1) + "\n")
    say(f"backup: {len(blob)} bytes, revision {status.get('revision')}, {status.get('totalKey')} keys, in {where}"
        + (f"; encryption key(s) {', '.join(key_names)} with it" if key_names else ""))
    for old in prune(root, keep or ctx.config.spec.backup.keep):
        say(f"removed the old backup {old.name} (keeping {keep or ctx.config.spec.backup.keep})")
    return where


def _encryption(ctx, ssh, t) -> tuple[str | None, list[str]]:
    """(the encryption configuration on ``t``, its key names): what the snapshot's Secrets need; None without one.
    Every key in it is kept in the state directory too, when that lacks it."""
    from ccp.cluster import keyring
    from ccp.cluster.encryption import parse
    from ccp.render_security import ENCRYPTION_CONFIG

    r = ssh.call(ssh.run(t, f"cat {ENCRYPTION_CONFIG}", sudo=True, check=False, quiet=True))
    running = parse(r.stdout) if r.ok and r.stdout.strip() else None
    if running is None or not running.keys:
        return None, []
    held = keyring.keys(ctx.state_dir)
    for name, key in running.keys.items():
        if name not in held and keyring.is_name(name):
            keyring.store(ctx.state_dir, name, key)
    return r.stdout + "\n", list(running.keys)


def backups(root: Path) -> list[Path]:
    """ccp's backups under ``root``, oldest first (directories holding a backup.json; nothing else is touched)."""
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and (p / "backup.json").is_file()), key=lambda p: p.name)


def prune(root: Path, keep: int) -> list[Path]:
    import shutil

    old = backups(root)[:-keep] if keep > 0 else []
    for p in old:
        shutil.rmtree(p)
    return old


def _write_bytes(path: Path, data: bytes) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
