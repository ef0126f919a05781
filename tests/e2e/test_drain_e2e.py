"""The upgrade's drain on a real cluster (tests/e2e/conftest.py): a node running a pod covered by a
PodDisruptionBudget with minAvailable equal to the replicas. The drain must stop with the PDB's
name within its bounded wait, not hang; the node is uncordoned afterwards."""

from __future__ import annotations

import time
import uuid

import pytest

pytestmark = pytest.mark.e2e


def test_drain_is_blocked_by_a_pdb_and_names_it(real_cluster):
    from lightkube.codecs import load_all_yaml
    from lightkube.resources.core_v1 import Namespace, Pod
    from lightkube.resources.policy_v1 import PodDisruptionBudget

    from ccp.errors import KubernetesError
    from ccp.remote.drain import drain
    from ccp.remote.kube_nodes import LightkubeNodes

    ns = f"ccp-drain-{uuid.uuid4().hex[:6]}"
    image = real_cluster.image or "docker.io/library/busybox:1.37.0"
    port = LightkubeNodes(real_cluster.kubeconfig)
    for obj in load_all_yaml(f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: main, image: "{image}", imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web-pdb, namespace: {ns}}}
spec: {{minAvailable: 1, selector: {{matchLabels: {{app: web}}}}}}
"""):
        port.client.create(obj)
    node = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            pods = list(port.client.list(Pod, namespace=ns))
            pdb = port.client.get(PodDisruptionBudget, "web-pdb", namespace=ns)
            if pods and pods[0].status.phase == "Running" and pdb.status and pdb.status.expectedPods == 1:
                node = pods[0].spec.nodeName
                break
            time.sleep(1)
        assert node, "the pod did not start"
        t0 = time.monotonic()
        with pytest.raises(KubernetesError) as info:
            drain(port, node, 8, interval=2)
        took = time.monotonic() - t0
        assert f"blocked by PodDisruptionBudget {ns}/web-pdb" in info.value.message
        assert any("minAvailable 1" in d and "0 disruptions allowed" in d for d in info.value.details), info.value.details
        assert took < 30, f"the drain took {took:.0f}s to give up"
        assert len(list(port.client.list(Pod, namespace=ns))) == 1, "the protected pod was not evicted"
    finally:
        if node:
            port.cordon(node, False)
        port.client.delete(Namespace, ns)
