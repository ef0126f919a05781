"""`ccp validate` against a real cluster (tests/e2e/conftest.py), through the command line, with a
storage class the test sets up: a no-provisioner class and a hostPath PV made for it. Nothing the
checks create is left behind."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import run_ccp

pytestmark = pytest.mark.e2e


@pytest.fixture
def hostpath_class(kubeconfig, tmp_path):
    """A StorageClass without a provisioner and one hostPath PV of it, removed afterwards."""
    from lightkube import Client, KubeConfig
    from lightkube.codecs import load_all_yaml

    name = f"ccp-e2e-{uuid.uuid4().hex[:6]}"
    client = Client(KubeConfig.from_file(str(kubeconfig)), field_manager="ccp-e2e")
    objs = load_all_yaml(f"""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: {name}}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}-pv}}
spec:
  capacity: {{storage: 2Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: {name}
  hostPath: {{path: /tmp/{name}, type: DirectoryOrCreate}}
""")
    for o in objs:
        client.apply(o, force=True)
    yield name
    from lightkube.resources.core_v1 import PersistentVolume
    from lightkube.resources.storage_v1 import StorageClass

    client.delete(PersistentVolume, f"{name}-pv")
    client.delete(StorageClass, name)


def _validate(real_cluster, *args):
    image = ("--image", real_cluster.image) if real_cluster.image else ()
    r = run_ccp("validate", "--kubeconfig", real_cluster.kubeconfig, *image, "--output", "json", "--timeout", "180", *args)
    return r, json.loads(r.out) if r.out.strip().startswith("{") else None


def test_pvc_persistence_and_api_endpoint_for_real(real_cluster, hostpath_class):
    from ccp.validation.base import VALIDATE_LABEL
    from ccp.validation.port import LightkubeValidation

    r, data = _validate(real_cluster, "--storage-class", hostpath_class, "--only", "pvc-persistence,api-endpoint")
    assert data is not None, r.text
    by = {x["check"]: x for x in data["results"]}
    assert by["api-endpoint"]["status"] == "pass", by["api-endpoint"]
    assert by["pvc-persistence"]["status"] == "pass", by["pvc-persistence"]
    assert r.code == 0, r.text
    port = LightkubeValidation(real_cluster.kubeconfig)
    if len(port.schedulable_nodes()) == 1:   # the cross-node step degrades, and says so
        assert "cross-node part skipped: only one schedulable node" in by["pvc-persistence"]["detail"]
    assert port.namespaces({VALIDATE_LABEL: "true"}) == [], "every namespace the run made is gone or terminating"


def test_a_failing_check_exits_8_on_a_real_cluster(real_cluster):
    r, data = _validate(real_cluster, "--storage-class", "no-such-class", "--only", "pvc-persistence", "--timeout", "20")
    assert r.code == 8, r.text
    assert data["results"][0]["status"] == "fail"


def test_dns_and_network_for_real(real_cluster):
    """Needs DNS, Service routing and a CNI that enforces NetworkPolicy (kube-router, as ccp installs)."""
    real_cluster.limit("DNS and Service routing (no CoreDNS, no kube-proxy)")
    r, data = _validate(real_cluster, "--only", "dns-and-network")
    assert data["results"][0]["status"] == "pass", r.text
