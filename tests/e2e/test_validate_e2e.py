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


def test_dns_and_service_for_real(real_cluster):
    """dns is skipped, with its reason, where the cluster has no kube-dns (the lab has no CoreDNS), never passed.
    service-and-policy uses no DNS: on the lab (no kube-proxy: pod IPs route, ClusterIPs do not — its stated limit)
    it must reach the server pod directly and fail at the ClusterIP, saying so. Elsewhere both pass (a CNI that
    enforces NetworkPolicy, as ccp installs)."""
    from ccp.validation.base import VALIDATE_LABEL
    from ccp.validation.port import LightkubeValidation

    r, data = _validate(real_cluster, "--only", "dns,service-and-policy", "--timeout", "120")
    assert data is not None, r.text
    by = {x["check"]: x for x in data["results"]}
    assert list(by) == ["dns", "service-and-policy"]
    if real_cluster.is_lab:
        assert by["dns"]["status"] == "skipped", by["dns"]
        assert by["dns"]["reason"] == by["dns"]["detail"] == "no kube-dns Service in kube-system"
        svc = by["service-and-policy"]
        assert svc["status"] == "fail", svc
        assert svc["detail"].startswith("a pod reached the server pod at "), svc
        assert "but could not reach it through its Service's ClusterIP " in svc["detail"], svc
        assert data["counts"] == {"passed": 0, "failed": 1, "skipped": 1} and data["summary"] == "0 passed, 1 failed, 1 skipped"
        assert r.code == 8, r.text
    else:
        assert by["dns"]["status"] == "pass", by["dns"]
        assert by["service-and-policy"]["status"] == "pass", by["service-and-policy"]
        assert r.code == 0, r.text
    port = LightkubeValidation(real_cluster.kubeconfig)
    assert port.namespaces({VALIDATE_LABEL: "true"}) == [], "every namespace the run made is gone or terminating"


def test_a_skipped_check_shows_skip_and_exits_0(real_cluster):
    """The table people read: SKIP with the reason, and the summary counts it apart from passes."""
    if not real_cluster.is_lab:
        pytest.skip("needs a cluster without cluster DNS (the shared lab)")
    r = run_ccp("validate", "--kubeconfig", real_cluster.kubeconfig, "--only", "dns")
    assert r.code == 0, r.text
    assert "SKIP" in r.out and "PASS" not in r.out and "kube-dns" in r.out, r.out
    assert "0 passed, 1 skipped" in r.out, r.out


def test_dns_reads_kube_dns_from_the_real_cluster(real_cluster):
    """Against the real API: a kube-dns Service with no pod behind it is a skip saying so; with a ready pod
    that answers nothing it is a failure, not a skip. Lab only: it puts a kube-dns Service into kube-system."""
    if not real_cluster.is_lab:
        pytest.skip("writes a kube-dns Service into kube-system: only on the throw-away shared lab")
    from lightkube import Client, KubeConfig
    from lightkube.codecs import load_all_yaml
    from lightkube.core.exceptions import ApiError
    from lightkube.resources.core_v1 import Pod, Service

    client = Client(KubeConfig.from_file(str(real_cluster.kubeconfig)), field_manager="ccp-e2e")
    svc, dns_pod = load_all_yaml(f"""
apiVersion: v1
kind: Service
metadata: {{name: kube-dns, namespace: kube-system}}
spec: {{selector: {{k8s-app: kube-dns}}, ports: [{{name: dns, port: 53, protocol: UDP}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: ccp-e2e-silent-dns, namespace: kube-system, labels: {{k8s-app: kube-dns}}}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers: [{{name: main, image: {real_cluster.image}, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}}]
""")
    try:
        client.apply(svc, force=True)
        r, data = _validate(real_cluster, "--only", "dns")
        assert data["results"][0]["status"] == "skipped", r.text
        assert data["results"][0]["reason"] == "no cluster DNS: no pods behind the kube-dns Service in kube-system"
        assert r.code == 0, r.text

        client.apply(dns_pod, force=True)
        r, data = _validate(real_cluster, "--only", "dns", "--timeout", "60")
        dns = data["results"][0]
        assert dns["status"] == "fail", r.text
        assert "a pod could not resolve kubernetes.default.svc.cluster.local through the cluster DNS" in dns["detail"]
        assert "1 ready pod(s)" in dns["detail"] and r.code == 8
    finally:
        for kind, name in ((Pod, "ccp-e2e-silent-dns"), (Service, "kube-dns")):
            try:
                client.delete(kind, name, namespace="kube-system", grace_period=0)
            except ApiError as exc:   # never made: the first part failed
                assert exc.status.code == 404, exc
