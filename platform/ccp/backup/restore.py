"""`ccp restore --from BACKUP`: etcd brought back from a snapshot on every control plane.

The steps, each a journaled phase that probes first (a failure or Ctrl-C and a rerun go on from where
they stopped):

  restore/verify    the snapshot's sha256 matches what the backup recorded (backup.json, or the
                    .sha256 file the scheduled backups write beside each snapshot)
  restore/stop      on every control plane, the controller-manager, scheduler, kube-apiserver and etcd
                    static-pod manifests are moved aside (the kubelet stops them) and awaited gone: no
                    member may run while another restores
  restore/snapshot  the snapshot uploaded to each control plane (0600, checked by sha256 there), then
                    `etcdutl snapshot restore` from the node's own etcd image into a new data
                    directory with the cluster's members as one new cluster, and swapped in; the old
                    data is kept as /var/lib/etcd/ccp-before-restore-<id>
  restore/encryption-keys  the keys the snapshot's Secrets are stored with (the backup's encryption
                    configuration) added for reading to every control plane's that lacks one, and to
                    <state>/secrets; the cluster's own key still encrypts
  restore/start     the manifests put back (etcd first, the controllers last), the API awaited through
                    the VIP and each controller-manager's and scheduler's /healthz, the uploaded snapshot
                    removed from the nodes (it holds the cluster's Secrets)

Every change made to the cluster after the snapshot is lost: the command asks first.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from ccp.errors import ConfigError, PreflightError

WORK = "/var/lib/ccp/restore"
ETCD_DATA = "/var/lib/etcd"   # kubeadm's etcd data directory (its member/ is what a restore replaces)
PARKED = "/etc/kubernetes/ccp-restore-parked"
MANIFESTS = "/etc/kubernetes/manifests"
# The controllers first, then the API, so nothing writes while etcd stops; started in the reverse order. The
# controller-manager and the scheduler are restarted too (as Kubernetes' etcd restore guide says): found on real
# nodes, left running they kept caches from before the restore, and one exited on its lost leader lease
# seconds after `ccp restore` ended, failing the next command's preflight (kube-scheduler not ready).
PARK_ORDER = ("kube-controller-manager.yaml", "kube-scheduler.yaml", "kube-apiserver.yaml", "etcd.yaml")
CONTROLLER_HEALTH = ("https://127.0.0.1:10257/healthz", "https://127.0.0.1:10259/healthz")   # kubeadm's ports


@dataclass(frozen=True)
class Snapshot:
    path: Path
    sha256: str
    kubernetes: str | None
    encryption: Path | None = None    # the encryption configuration the snapshot's API servers read (ccp backup)

    @property
    def rid(self) -> str:
        """This restore's id: the same snapshot always gives the same id, so a resumed run finds its own work."""
        return self.sha256[:12]


def find(source: Path) -> Snapshot:
    """A backup directory from `ccp backup`, or a .db snapshot with its .sha256 beside it (scheduled backups)."""
    if source.is_dir():
        db, meta = source / "etcd-snapshot.db", source / "backup.json"
        if not db.is_file() or not meta.is_file():
            raise ConfigError(f"{source} is not a backup made by ccp backup (no etcd-snapshot.db and backup.json)",
                              "pass a directory under <state>/backups/, or a snapshot .db file with its .sha256")
        try:
            info = json.loads(meta.read_text())
            keys = source / "encryption-config.yaml"
            return Snapshot(db, str(info["sha256"]), info.get("kubernetes"), keys if keys.is_file() else None)
        except (ValueError, KeyError, TypeError):
            raise ConfigError(f"{meta} is damaged: it does not record the snapshot's sha256",
                              "restore from another backup (ccp backup writes a new one while the cluster runs)") from None
    if source.is_file():
        digest_file = source.with_name(source.name + ".sha256")
        if not digest_file.is_file():
            raise ConfigError(f"{source} has no {digest_file.name} beside it: its integrity cannot be checked",
                              f"copy the .sha256 file that was written with it, or write one: sha256sum {source.name} > {digest_file.name}")
        digest = (digest_file.read_text().split() or [""])[0]
        if len(digest) != 64:
            raise ConfigError(f"{digest_file} does not hold a sha256", f"write one: sha256sum {source.name} > {digest_file.name}")
        return Snapshot(source, digest, None)
    raise ConfigError(f"there is no backup at {source}", "pass a directory under <state>/backups/ (ccp backup lists where it saved)")


def verify(snap: Snapshot) -> None:
    h = hashlib.sha256()
    with snap.path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != snap.sha256:
        raise PreflightError(f"the snapshot {snap.path} does not match its recorded sha256 (damaged or changed)",
                             "restore from another backup; nothing on the cluster was touched")


def restore_argv(name: str, peers: dict[str, str], rid: str, snapshot: str, data_dir: str) -> list[str]:
    """The etcdutl command that makes ``name``'s data directory from the snapshot, for a cluster of ``peers``."""
    cluster = ",".join(f"{n}=https://{ip}:2380" for n, ip in peers.items())
    return ["etcdutl", "snapshot", "restore", snapshot, "--name", name, "--initial-cluster", cluster,
            "--initial-cluster-token", f"ccp-restore-{rid}", "--initial-advertise-peer-urls", f"https://{peers[name]}:2380",
            "--data-dir", data_dir]


def park_script() -> str:
    moves = "; ".join(f"[ ! -f {MANIFESTS}/{m} ] || mv {MANIFESTS}/{m} {PARKED}/{m}" for m in PARK_ORDER)
    from ccp.remote.static_pods import STATIC, gone_script

    return (f"set -e; mkdir -p {PARKED}; {moves}; {gone_script(STATIC, 120)}"
            "[ -n \"$gone\" ] && exit 0; "
            "echo 'a control plane static pod still runs 120 s after their manifests were moved' >&2; exit 1")


def controllers_script(timeout: int = 180) -> str:
    """Wait until this control plane's controller-manager and scheduler answer /healthz (up to ``timeout`` s);
    else say which does not, exit 1."""
    checks = " && ".join(f"curl -ksf --max-time 3 {u} >/dev/null" for u in CONTROLLER_HEALTH)
    return (f"i=0; while [ $i -lt {int(timeout)} ]; do {checks} && exit 0; i=$((i+2)); sleep 2; done; "
            + "; ".join(f"curl -ksf --max-time 3 {u} >/dev/null || echo '{u} does not answer after {int(timeout)}s' >&2"
                        for u in CONTROLLER_HEALTH) + "; exit 1")


def settled_script(want: int, timeout: int = 240) -> str:
    """Run on a control plane: wait until the API lists ``want`` control-plane pods (kubeadm's label
    tier=control-plane), every one Ready. Found on real nodes: the pods come back from the snapshot with the
    status they had then, and a command run right after the restore (ccp upgrade's preflight) refused the
    cluster for control-plane pods "not ready" that ran well; the kubelets post their real status within
    seconds. Else, after ``timeout`` s, name those not Ready and exit 1."""
    get = ("kubectl --kubeconfig /etc/kubernetes/admin.conf get pods -n kube-system -l tier=control-plane "
           "-o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}'")
    return (f"i=0; while [ $i -lt {int(timeout)} ]; do out=$({get} 2>/dev/null); "
            f"[ \"$(echo \"$out\" | grep -c ' True$')\" -ge {int(want)} ] && ! echo \"$out\" | grep -v ' True$' | grep -q . && exit 0; "
            "i=$((i+2)); sleep 2; done; "
            f"echo \"not Ready after {int(timeout)}s: $(echo \"$out\" | grep -v ' True$' | tr '\\n' ' ')\" >&2; exit 1")


def old_data_dir(rid: str) -> str:
    """Where a restore keeps each control plane's etcd data from before it."""
    return f"{ETCD_DATA}/ccp-before-restore-{rid}"


def node_restore_script(name: str, peers: dict[str, str], rid: str, image: str) -> str:
    """Restore into a directory inside /var/lib/etcd and swap its member/ in. The data directory itself is
    never renamed: it is often a mount point of its own (a dedicated etcd disk; the local machines' bind
    mount), and renaming it failed on real nodes with "Device or resource busy". The old member/ stays
    beside the new one as ccp-before-restore-<id> (etcd notes the extra entry and ignores it), on the same
    filesystem, so nothing large is copied and nothing is deleted."""
    data = f"{ETCD_DATA}/ccp-restored-{rid}"
    argv = " ".join(shlex.quote(a) for a in restore_argv(name, peers, rid, f"{WORK}/snapshot.db", data))
    old = old_data_dir(rid)
    return (f"set -e; [ -f {WORK}/restored-{rid} ] && exit 0; mkdir -p {ETCD_DATA}; chmod 0700 {ETCD_DATA}; rm -rf {data}; "
            f"ctr -n k8s.io run --rm --net-host --mount type=bind,src=/var/lib,dst=/var/lib,options=rbind:rw "
            f"{shlex.quote(image)} ccp-etcd-restore-{rid} {argv}; "
            # an earlier attempt that moved the original aside left a restored copy in member/: only that goes
            f"if [ -d {old}/member ]; then rm -rf {ETCD_DATA}/member; "
            f"elif [ -d {ETCD_DATA}/member ]; then mkdir -p {old}; mv {ETCD_DATA}/member {old}/member; fi; "
            f"mv {data}/member {ETCD_DATA}/member; rmdir {data}; "
            f"touch {WORK}/restored-{rid}")


def unpark_script(manifest: str) -> str:
    """Put one manifest back (the kubelet starts its pod); the parking directory goes once it is empty."""
    return (f"set -e; [ ! -f {PARKED}/{manifest} ] || mv {PARKED}/{manifest} {MANIFESTS}/{manifest}; "
            f"rmdir {PARKED} 2>/dev/null || true")
