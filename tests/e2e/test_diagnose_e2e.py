"""`ccp diagnose --kubeconfig` on a real cluster (tests/e2e/conftest.py): a crash-looping pod that
prints a password and holds one in its environment, a Secret, and an Event carrying a token are
found or collected, and the planted secret is in 0 bytes of the bundle."""

from __future__ import annotations

import json
import tarfile
import time
import uuid

import pytest

from tests.conftest import run_ccp

pytestmark = pytest.mark.e2e
PLANTED = "PLANTED-e2e-s3cr3t"


@pytest.fixture
def troubled_namespace(real_cluster):
    from lightkube import Client, KubeConfig
    from lightkube.codecs import load_all_yaml
    from lightkube.resources.core_v1 import Namespace

    ns = f"ccp-diag-{uuid.uuid4().hex[:6]}"
    image = real_cluster.image or "docker.io/library/busybox:1.37.0"
    client = Client(KubeConfig.from_file(str(real_cluster.kubeconfig)), field_manager="ccp-e2e")
    for obj in load_all_yaml(f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db, namespace: {ns}}}
stringData: {{password: {PLANTED}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher, namespace: {ns}}}
spec:
  restartPolicy: Always
  containers:
    - name: main
      image: {image}
      imagePullPolicy: IfNotPresent
      command: ["sh", "-c", "echo connecting with password=$DB_PASSWORD; exit 1"]
      env: [{{name: DB_PASSWORD, value: {PLANTED}}}]
"""):
        client.create(obj)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:   # wait until it has crashed at least once, so its log exists
        from lightkube.resources.core_v1 import Pod

        st = client.get(Pod, "crasher", namespace=ns).status
        if any((cs.restartCount or 0) >= 1 for cs in st.containerStatuses or []):
            break
        time.sleep(1)
    yield ns
    client.delete(Namespace, ns)
    from lightkube.core.exceptions import ApiError

    deadline = time.monotonic() + 120   # gone before the next test drains this node (its pod has no controller)
    while time.monotonic() < deadline:
        try:
            client.get(Namespace, ns)
        except ApiError:
            break
        time.sleep(1)


def test_diagnose_and_bundle_on_a_real_cluster(real_cluster, troubled_namespace, tmp_path):
    out = tmp_path / "support.tar.gz"
    r = run_ccp("diagnose", "--kubeconfig", real_cluster.kubeconfig, "--output", "json", "--bundle", out)
    assert r.code == 9, r.text            # the crash-looping pod fails the diagnosis
    found = json.loads(r.out)["findings"]
    pods = [f for f in found if f["check"] == "pods" and f["severity"] == "fail"]
    assert any(f"{troubled_namespace}/crasher" in e for f in pods for e in f["evidence"]), pods
    assert next(f for f in found if f["check"] == "apiserver-readyz")["severity"] == "ok"
    assert next(f for f in found if f["check"] == "node-ready")["severity"] == "ok"
    assert any(f["section"] == "certs" and f["severity"] == "ok" for f in found)
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}
    assert f"logs/{troubled_namespace}/crasher/main.log" in members
    assert b"connecting with password=" in members[f"logs/{troubled_namespace}/crasher/main.log"]
    leaks = [name for name, data in members.items() if PLANTED.encode() in data]
    assert leaks == [], f"the planted secret is in {leaks}"
    assert b"DB_PASSWORD" in members["kubernetes/pods.json"]
