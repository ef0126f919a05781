"""How long ccp diagnose takes to reach its findings.

usage: python bench/diagnose.py [KUBECONFIG]
Without a kubeconfig: ccp's own overhead over a fake port (SnapshotFake) holding 1,000 and 10,000
pods (5 % of them failing), measured side by side, with the ratio (linear is ~10x), and the 1,000
pods ten times over (the same work with the pods in the CPU's caches: what linear costs). With one: the
whole Kubernetes section against that cluster (list calls per kind plus the checks), and how many
pods it saw. Target: 1,000 pods in 10 s or less. Asserts nothing.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path


class SnapshotFake:
    """A diagnose port that hands out a prepared snapshot: measures the checks, not the network."""

    def __init__(self, pods: int):
        from ccp.diagnose.kubernetes import Snapshot

        def pod(i):
            bad = i % 20 == 0
            cs = [{"name": "main", "restartCount": 3 if bad else 0,
                   "state": {"waiting": {"reason": "CrashLoopBackOff"}} if bad else {"running": {}}}]
            return {"metadata": {"name": f"p{i}", "namespace": f"ns{i % 50}", "labels": {}},
                    "spec": {"containers": [{"name": "main"}]},
                    "status": {"phase": "Running", "containerStatuses": cs,
                               "conditions": [{"type": "Ready", "status": "False" if bad else "True"}]}}

        nodes = [{"metadata": {"name": f"n{i}"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                 for i in range(max(3, pods // 30))]
        self.snap = Snapshot(nodes=nodes, pods=[pod(i) for i in range(pods)], readyz="[+]etcd ok")

    def snapshot(self):
        return self.snap

    def log(self, *a, **kw):
        return ""


def timed(port, repeat: int = 5) -> float:
    """The whole runner: thread pool, the Kubernetes pass, sorting the findings."""
    from ccp.diagnose import runner

    return best_of(lambda: runner.run(kube=port, only={"kubernetes", "addons"}), repeat)


def pass_rounds(ports: dict, rounds: int = 15) -> dict[str, list[float]]:
    """Seconds of one Kubernetes pass (what grows with the pods) per port and round: each port in turn,
    round after round, so the machine's noise falls on all alike; 1,000 pods run 10 times a round."""
    from ccp.diagnose import kubernetes

    snaps = {name: port.snapshot() for name, port in ports.items()}
    out: dict[str, list[float]] = {name: [] for name in ports}
    for _ in range(rounds):
        for name, snap in snaps.items():
            times = 10_000 // len(snap.pods)
            t0 = time.perf_counter()
            for _ in range(times):
                kubernetes.findings(snap)
            out[name].append((time.perf_counter() - t0) / times)
    return out


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    if len(sys.argv) > 1:
        from ccp.diagnose.port import LightkubeDiagnose

        port = LightkubeDiagnose(Path(sys.argv[1]))
        t0 = time.perf_counter()
        pods = len(port.snapshot().pods)
        listed = time.perf_counter() - t0
        print(f"real cluster: {pods} pods listed in {listed:.2f}s; findings in {timed(port, 1):.2f}s")
        return 0
    thousand, ten_thousand = SnapshotFake(1000), SnapshotFake(10000)
    # 10,000 pods' worth of work over the 1,000 pod objects ten times over: they stay in the CPU's caches,
    # so this is what linear costs here; the rest of the 10,000-pod time is memory, not work
    again = SnapshotFake(0)
    again.snap = replace(thousand.snap, pods=thousand.snap.pods * 10)
    ports = {"1,000 pods": thousand, "10,000 pods": ten_thousand, "the 1,000 pods ten times over": again}
    rounds = pass_rounds(ports)
    print(f"{'fake port':<34}{'runner ms':>10}{'pass ms':>9}")
    for name, port in ports.items():
        print(f"{name:<34}{timed(port) * 1000:>10.1f}{statistics.median(rounds[name]) * 1000:>9.1f}")
    one, ten, cached = rounds.values()
    ratio = statistics.median(b / a for a, b in zip(one, ten))
    print(f"\nKubernetes pass, 10,000 / 1,000 pods = {ratio:.1f}x (linear is ~10x; median of {len(one)} rounds)")
    print(f"the same work in cache (the 1,000 ten times over) = {statistics.median(b / a for a, b in zip(one, cached)):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
