"""The Kubernetes side of `ccp upgrade` over FakeCluster, for a ccp in the test's process and for one in a
process of its own (tests.ssh.upgrade_child). Fakes, named as such; SSH to the nodes stays real:

  UpgradePortFake   the nodes port: cordon, a drain (one pod a node, no budget in the way), and each node's
                    readiness and kubelet version as the fake nodes recorded them (FakeCluster.upgraded, read
                    from the file it keeps, so another process sees them too); the cluster's UID from a file
  DiagnoseFake      the preflight's Kubernetes snapshot: every API server at cluster.yaml's version; the
                    diagnose sections find nothing (their checks have tests of their own)
  add-ons, validate their plans say one thing to do; running them writes a line to <work>/calls
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

FROM, TARGET = "1.36.2", "1.37.1"


class UpgradePortFake:
    def __init__(self, upgraded_file: Path):
        self.upgraded_file, self.cordons, self.stop_after = upgraded_file, [], None

    def cordon(self, node, unschedulable):
        self.cordons.append((node, unschedulable))

    def pods_on(self, node):
        return [{"metadata": {"name": f"app-{node}", "namespace": "shop", "ownerReferences": [{"kind": "ReplicaSet"}]},
                 "status": {"phase": "Running"}}]

    def pdbs(self):
        return []

    def evict(self, ns, name):
        return None

    def pod_exists(self, ns, name):
        return False

    def leaving_namespaces(self):
        return set()

    def cluster_uid(self):
        """The kube-system namespace's UID: <work>/cluster-uid, which a test rewrites for a cluster made anew."""
        uid = self.upgraded_file.parent / "cluster-uid"
        return uid.read_text() if uid.exists() else "fake-uid-1"

    def node_state(self, node):
        if node == self.stop_after:   # Ctrl-C while ccp waits for this node
            raise KeyboardInterrupt
        upgraded = json.loads(self.upgraded_file.read_text()) if self.upgraded_file.exists() else {}
        return True, f"v{TARGET}" if "kubelet" in upgraded.get(node, []) else f"v{FROM}"


class DiagnoseFake:
    def __init__(self, kubeconfig):
        pass

    def snapshot(self):
        pod = {"metadata": {"name": "kube-apiserver-fk-cp-1", "labels": {"component": "kube-apiserver"}},
               "spec": {"containers": [{"image": f"registry.k8s.io/kube-apiserver:v{FROM}"}]}}
        return SimpleNamespace(pods=[pod])


def install(patch, work: Path) -> UpgradePortFake:
    """Put the fakes in place with ``patch(owner, name, value)`` (monkeypatch.setattr, or setattr in a
    process of its own); -> the nodes port, whose ``stop_after`` a test may set."""
    from ccp.cluster import facts
    from ccp.diagnose import port, runner
    from ccp.engine.phase import Action
    from ccp.phases.addons import Addons
    from ccp.phases.validate import Validate

    nodes = UpgradePortFake(work / "upgraded.json")
    patch(facts, "nodes_port", lambda ctx: nodes)
    patch(runner, "run", lambda **kw: runner.Report())
    patch(port, "LightkubeDiagnose", DiagnoseFake)

    def ran(name):
        def apply(self, ctx, actions):
            with open(work / "calls", "a") as f:
                f.write(f"{name} {ctx.config.spec.kubernetes.version}\n")
            return {"ran": name}
        return apply
    for phase, name in ((Addons, "addons"), (Validate, "validate")):
        patch(phase, "plan", lambda self, ctx, name=name: [Action("apply", f"fake {name}")])
        patch(phase, "apply", ran(name))
    return nodes


def calls(work: Path) -> list[str]:
    return (work / "calls").read_text().splitlines() if (work / "calls").exists() else []
