"""How long ccp diagnose takes to reach its findings.

usage: python bench/diagnose.py [KUBECONFIG]
Without a kubeconfig: ccp's own overhead over a fake port (SnapshotFake) holding 1,000 and 10,000
pods (5 % of them failing), measured side by side, with the ratio (linear is ~10x). With one: the
whole Kubernetes section against that cluster (list calls per kind plus the checks), and how many
pods it saw. Target: 1,000 pods in 10 s or less. Asserts nothing.
"""

from __future__ import annotations

import sys
import time
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


def timed(port, repeat: int = 3) -> float:
    from ccp.diagnose import runner

    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        runner.run(kube=port, only={"kubernetes", "addons"})
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
    small, large = timed(SnapshotFake(1000)), timed(SnapshotFake(10000))
    print(f"fake port, 1,000 pods:  {small * 1000:.1f} ms")
    print(f"fake port, 10,000 pods: {large * 1000:.1f} ms  ({large / small:.1f}x the 1,000-pod time; linear is ~10x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
