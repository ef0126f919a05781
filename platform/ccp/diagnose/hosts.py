"""Host findings from one small read-only script per node, run over SSH on all nodes at once."""

from __future__ import annotations

from ccp.diagnose.base import Finding, sample

FACTS_SCRIPT = r"""echo "disk=$(df -P / | awk 'NR==2{print $5}')"
echo "inodes=$(df -Pi / | awk 'NR==2{print $5}')"
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


def parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _pct(v: str) -> int | None:
    try:
        return int(v.rstrip("%"))
    except ValueError:
        return None


def findings(facts: dict[str, dict], offsets: dict[str, float], unreachable: dict[str, str],
             roles: dict[str, str] | None = None) -> list[Finding]:
    """``facts``: node -> parsed facts; ``offsets``: node -> its clock minus ours (seconds)."""
    out: list[Finding] = []
    roles = roles or {}
    for node, why in sorted(unreachable.items()):
        out.append(Finding("hosts", "reachable", "fail", f"{node} cannot be reached over SSH", [why],
                           "check that the VM is powered on (`ccp diagnose --only vsphere`) and its network"))
    for node, f in sorted(facts.items()):
        for key, what in (("disk", "disk"), ("inodes", "inodes")):
            pct = _pct(f.get(key, ""))
            if pct is not None and pct >= 85:
                out.append(Finding("hosts", f"{key}-usage", "fail" if pct >= 95 else "warn", f"{node}: root filesystem {what} {pct}% used",
                                   [], "the kubelet evicts pods near full disks: prune images (crictl rmi --prune) or grow the disk"))
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
