"""Host findings from one small read-only script per node, run over SSH on all nodes at once."""

from __future__ import annotations

from ccp.diagnose.base import Finding, sample

# Where a node's Kubernetes data lives: each may be a filesystem of its own (a separate disk or partition for
# containerd, etcd or logs is common on VMs; local machines bind containerd's and etcd's), and the root
# filesystem's usage says nothing of those. Each filesystem is reported once, under the first path on it: a
# block device by its name (bind mounts of one disk), anything else (tmpfs, overlay) by its mount point.
DATA_PATHS = ("/", "/var/log", "/var/lib/kubelet", "/var/lib/containerd", "/var/lib/etcd")
FACTS_SCRIPT = r"""seen=" "
for p in """ + " ".join(DATA_PATHS) + r"""; do
  [ -d "$p" ] || continue
  set -- $(df -P "$p" | awk 'NR==2{print $1, $5, $6}'); [ $# -eq 3 ] || continue
  case "$1" in /dev/*) fs=$1;; *) fs=$3;; esac
  case "$seen" in *" $fs "*) continue;; esac; seen="$seen$fs "
  echo "disk:$p=$2"; echo "inodes:$p=$(df -Pi "$p" | awk 'NR==2{print $5}')"
done
echo "mem_total_kb=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "mem_avail_kb=$(awk '/^MemAvailable:/{print $2}' /proc/meminfo)"
echo "swap_kb=$(awk 'NR>1{s+=$3} END{print s+0}' /proc/swaps)"
echo "max_map_count=$(cat /proc/sys/vm/max_map_count 2>/dev/null)"
for s in containerd kubelet; do echo "$s=$(systemctl is-active $s 2>/dev/null || echo unknown)"; done
echo "kubelet_errors=$(journalctl -u kubelet --since '-1h' -p err --no-pager -q 2>/dev/null | wc -l)"
echo "kubelet_last_error=$(journalctl -u kubelet --since '-1h' -p err --no-pager -q 2>/dev/null | tail -n 1 | cut -c1-300)"
echo "time=$(date +%s.%N)"
"""
MAP_COUNT = 262144   # Elasticsearch's minimum
DISK_REMEDY = {
    "/": "the kubelet evicts pods near full disks: prune images (crictl rmi --prune) or grow the disk",
    "/var/log": "logs fill it: journalctl --vacuum-size=200M, remove rotated logs (/var/log/**/*.gz), find the largest "
                "container logs (du -sh /var/log/pods/*); or grow it",
    "/var/lib/kubelet": "the kubelet evicts pods near full disks: find the largest emptyDir volumes "
                        "(du -sh /var/lib/kubelet/pods/*); or grow it",
    "/var/lib/containerd": "the kubelet deletes images and evicts pods near full disks: prune images (crictl rmi --prune) "
                           "or grow it",
    "/var/lib/etcd": "etcd stops writing when its disk is full: compact and defragment it (etcdctl defrag), remove old "
                     "snapshots, or grow it",
}


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _pct(v: str) -> int | None:
    try:
        return int(v.rstrip("%"))
    except ValueError:
        return None


UNREACHABLE = {   # what to look at first for a node that does not answer SSH, by provisioner
    "local": "check that its machine runs (`ccp diagnose --only machines`): `ccp install` starts a stopped one, "
             "`ccp node replace NAME` makes a broken one new",
    "static": "check that the host is up and port 22 is reachable from here",
}
VM_UNREACHABLE = "check that the VM is powered on (`ccp diagnose --only vsphere`) and its network"


def findings(facts: dict[str, dict], offsets: dict[str, float], unreachable: dict[str, str],
             roles: dict[str, str] | None = None, provisioner: str = "terraform") -> list[Finding]:
    """``facts``: node -> parsed facts; ``offsets``: node -> its clock minus ours (seconds)."""
    out: list[Finding] = []
    roles = roles or {}
    for node, why in sorted(unreachable.items()):
        out.append(Finding("hosts", "reachable", "fail", f"{node} cannot be reached over SSH", [why],
                           UNREACHABLE.get(provisioner, VM_UNREACHABLE).replace("NAME", node)))
    for node, f in sorted(facts.items()):
        for key, value in f.items():
            kind, _, path = key.partition(":")
            pct = _pct(value) if kind in ("disk", "inodes") else None
            if pct is not None and pct >= 85:
                path = path or "/"   # facts of ccp before DATA_PATHS: the root filesystem only
                where = "root filesystem" if path == "/" else f"filesystem of {path}"
                out.append(Finding("hosts", f"{kind}-usage", "fail" if pct >= 95 else "warn", f"{node}: {where} {kind} {pct}% used",
                                   [], DISK_REMEDY.get(path, DISK_REMEDY["/"])))
        try:
            total, avail = int(f.get("mem_total_kb", 0)), int(f.get("mem_avail_kb", 0))
            if total and avail / total < 0.1:
                out.append(Finding("hosts", "memory", "warn", f"{node}: {avail // 1024} MiB of {total // 1024} MiB memory available",
                                   [], "move workloads off this node or give it more memory"))
        except ValueError:
            pass
        if f.get("swap_kb", "0") not in ("0", ""):
            out.append(Finding("hosts", "swap", "warn", f"{node}: swap is on ({f['swap_kb']} KiB used)", [],
                               "the kubelet expects swap off: swapoff -a and remove it from /etc/fstab (host preparation does)"))
        try:
            mmc = int(f.get("max_map_count") or 0)
        except ValueError:
            mmc = 0
        if roles.get(node) != "loadbalancer" and mmc and mmc < MAP_COUNT:
            out.append(Finding("hosts", "vm.max_map_count", "warn", f"{node}: vm.max_map_count is {mmc}, Elasticsearch needs {MAP_COUNT}",
                               [], f"sysctl -w vm.max_map_count={MAP_COUNT} and persist it (host preparation does)"))
        if roles.get(node) != "loadbalancer":
            for svc in ("containerd", "kubelet"):
                state = f.get(svc, "unknown")
                if state not in ("active", "unknown"):
                    out.append(Finding("hosts", f"{svc}-service", "fail", f"{node}: {svc} is {state}", [],
                                       f"systemctl status {svc} and journalctl -u {svc} on {node}"))
        errors = int(f.get("kubelet_errors") or 0) if (f.get("kubelet_errors") or "0").isdigit() else 0
        if errors:
            out.append(Finding("hosts", "kubelet-journal", "warn", f"{node}: {errors} kubelet errors in the last hour",
                               [f.get("kubelet_last_error", "")], f"journalctl -u kubelet -p err --since -1h on {node}"))
    if len(offsets) > 1:
        spread = max(offsets.values()) - min(offsets.values())
        ahead, behind = max(offsets, key=offsets.get), min(offsets, key=offsets.get)
        sev = "fail" if spread > 2 else "warn" if spread > 0.5 else "ok"
        out.append(Finding("hosts", "clock-offset", sev, f"clocks differ by {spread:.2f}s between nodes ({ahead} ahead of {behind})",
                           sample([f"{n}: {o:+.2f}s against this machine" for n, o in sorted(offsets.items())]),
                           "" if sev == "ok" else "run NTP (chrony or systemd-timesyncd) against the same servers on every node: "
                           "etcd and certificates need agreeing clocks"))
    if facts and not any(f.severity != "ok" for f in out):
        out.append(Finding("hosts", "facts", "ok", f"{len(facts)} hosts: disk, memory, swap, services and sysctls as expected"))
    return out
