"""The Kubernetes client code against a real cluster (tests/e2e/conftest.py: CCP_E2E_KUBECONFIG, else
the shared lab). Applying a CNI replaces the cluster's pod network, so that test also needs
CCP_E2E_APPLY_CNI=1 (use a throw-away cluster)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e


@pytest.fixture
def port(kubeconfig):
    from ccp.remote.kube import LightkubePort

    return LightkubePort(kubeconfig)


def test_server_side_apply_labels_and_is_idempotent(port):
    from lightkube.resources.core_v1 import ConfigMap, Namespace

    ns = f"ccp-e2e-{uuid.uuid4().hex[:6]}"
    text = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: probe, namespace: {ns}}}
data: {{a: "1"}}
"""
    try:
        applied = port.apply_yaml(text, {"app.kubernetes.io/managed-by": "ccp", "ccp.io/addon": "e2e"}, {"ccp.io/rendered-hash": "h1"})
        assert applied == [f"Namespace/{ns}", "ConfigMap/probe"]
        cm = port.client.get(ConfigMap, "probe", namespace=ns)
        assert cm.metadata.labels["app.kubernetes.io/managed-by"] == "ccp" and cm.metadata.annotations["ccp.io/rendered-hash"] == "h1"
        version = cm.metadata.resourceVersion
        port.apply_yaml(text, {"app.kubernetes.io/managed-by": "ccp", "ccp.io/addon": "e2e"}, {"ccp.io/rendered-hash": "h1"})
        assert port.client.get(ConfigMap, "probe", namespace=ns).metadata.resourceVersion == version, "re-apply changes nothing"
    finally:
        port.client.delete(Namespace, ns)


def test_wait_nodes_ready_on_a_real_cluster(port):
    from ccp.remote.kube import wait_nodes_ready

    names = [n.name for n in port.nodes()]
    assert names
    states = wait_nodes_ready(port, names, 120)
    assert all(s.ready for s in states)


def test_kubeconfig_rename_and_merge_work_with_the_client(tmp_path, kubeconfig):
    from ccp.phases.kubeconfig import merge, rename
    from ccp.remote.kube import LightkubePort

    doc = yaml.safe_load(Path(kubeconfig).read_text())
    current = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == current["cluster"])
    user = next(u for u in doc["users"] if u["name"] == current["user"])
    ours = rename({"clusters": [cluster], "users": [user], "contexts": []}, "ccp-e2e", cluster["cluster"]["server"])
    target = tmp_path / "config"
    merge(target, ours)
    assert LightkubePort(target, context="ccp-e2e").nodes()


def test_apply_bundled_cni_and_wait(port, tmp_path, real_cluster):
    real_cluster.limit("pulling the CNI's images (no registry is reachable)")
    if os.environ.get("CCP_E2E_APPLY_CNI") != "1":
        pytest.skip("applying a CNI replaces the cluster's pod network: set CCP_E2E_APPLY_CNI=1 on a throw-away cluster")
    from ccp import render
    from ccp.config.load import load
    from ccp.remote.kube import wait_nodes_ready
    from tests.conftest import example_data, write_config

    out = render.render_all(load(write_config(tmp_path / "c.yaml", example_data())))
    port.apply_yaml(out.files["cni/kube-router.yaml"], {"app.kubernetes.io/managed-by": "ccp", "ccp.io/addon": "cni"})
    wait_nodes_ready(port, [n.name for n in port.nodes()], 600)
