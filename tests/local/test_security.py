"""spec.security on the real HA cluster that tests/local/test_cluster.py builds (defaults: Secrets encrypted with
secretbox, the audit log, Pod Security enforce baseline). Plain functions over its ``Cluster`` (kubectl(),
ssh(address, cmd), nodes(), state, config), called from test_cluster.py in file order, after the validate test
and before the machines are stopped, so they share its one cluster; pytest collects nothing here.

  secrets_are_encrypted_in_etcd   a Secret read straight from etcd (etcdctl in the etcd static pod, as
                                  test_three_etcd_members does) starts k8s:enc:secretbox:v1:ccp-1: and holds
                                  no plain text; every control plane has the same configuration, the one made
                                  from the state directory's key (compared by digest: the key never goes on a
                                  command line)
  audit_log_records_requests      a request through the VIP shows in a control plane's audit log (sudo tail
                                  over SSH) as Metadata, by its user, without a body
  privileged_pods_are_refused     a privileged pod in default is refused (server-side dry run), a plain one is
                                  warned about, and the add-ons' pods run: nothing PodSecurity refused
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time

PLAIN = "ccp-local-plain-text-that-etcd-must-not-show"
ETCDCTL = ["etcdctl", "--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
           "--cert=/etc/kubernetes/pki/etcd/server.crt", "--key=/etc/kubernetes/pki/etcd/server.key"]
ENCRYPTION_CONFIG = "/etc/kubernetes/ccp/encryption-config.yaml"
AUDIT_LOG = "/var/log/kubernetes/audit/audit.log"


def _name() -> str:
    from tests.local.test_cluster import NAME

    return NAME


def _control_planes(cluster) -> dict[str, str]:
    return {n: a for n, a in sorted(cluster.nodes().items()) if "-cp-" in n}


def _kubectl(cluster, *args) -> subprocess.CompletedProcess:
    """kubectl that may fail (Cluster.kubectl asserts success)."""
    from tests.local.test_cluster import KUBECTL

    return subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "--request-timeout", "10s", *args],
                          capture_output=True, text=True, timeout=60)


def secrets_are_encrypted_in_etcd(cluster) -> None:
    name = "ccp-encryption-check"
    cluster.kubectl("-n", "default", "create", "secret", "generic", name, f"--from-literal=token={PLAIN}")
    try:
        out = cluster.kubectl("-n", "kube-system", "exec", f"etcd-{_name()}-cp-1", "--", *ETCDCTL,
                              "get", f"/registry/secrets/default/{name}", "-w", "json")
        (kv,) = json.loads(out)["kvs"]
        stored = base64.b64decode(kv["value"])
        assert stored.startswith(b"k8s:enc:secretbox:v1:ccp-1:"), stored[:40]
        assert PLAIN.encode() not in stored and base64.b64encode(PLAIN.encode()) not in stored
        token = cluster.kubectl("-n", "default", "get", "secret", name, "-o", "jsonpath={.data.token}")
        assert base64.b64decode(token).decode() == PLAIN, "the API server decrypts it"
    finally:
        _kubectl(cluster, "-n", "default", "delete", "secret", name, "--ignore-not-found")

    key_file = cluster.state / "secrets" / "encryption-key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    from ccp import render_security
    from ccp.cluster import keyring

    name, key = keyring.primary(cluster.state)
    assert key == key_file.read_text().strip()
    # as ccp uploads it: the rendered configuration's key entry filled in (its comment keeps the placeholder)
    expected = render_security.fill_keys((cluster.state / "rendered" / "security" / "encryption-config.yaml").read_text(),
                                         [(name, key)])
    digest = hashlib.sha256(expected.encode()).hexdigest()
    for cp, address in _control_planes(cluster).items():
        r = cluster.ssh(address, f"sudo -n stat -c %a {ENCRYPTION_CONFIG} && sudo -n sha256sum {ENCRYPTION_CONFIG}")
        mode, line = r.stdout.splitlines()
        assert mode == "600" and line.split()[0] == digest, f"{cp}: not the configuration made from the state's key"
        flags = cluster.ssh(address, "sudo -n cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
        assert f"--encryption-provider-config={ENCRYPTION_CONFIG}" in flags, cp


def audit_log_records_requests(cluster) -> None:
    name = f"ccp-audit-check-{int(time.time())}"
    cluster.kubectl("-n", "default", "create", "configmap", name, "--from-literal=k=v")
    cluster.kubectl("-n", "default", "delete", "configmap", name)
    found: list[dict] = []
    deadline = time.monotonic() + 60
    while not found and time.monotonic() < deadline:
        for cp, address in _control_planes(cluster).items():   # NGINX sent the requests to one of them
            tail = cluster.ssh(address, f"sudo -n tail -n 5000 {AUDIT_LOG}", check=False).stdout
            found += [json.loads(line) for line in tail.splitlines() if name in line]
        if not found:
            time.sleep(2)
    assert found, f"no audit event for configmap {name} in {AUDIT_LOG} on any control plane"
    verbs = {e["verb"] for e in found}
    assert {"create", "delete"} <= verbs, verbs
    for event in found:
        assert event["level"] == "Metadata" and "requestObject" not in event and "responseObject" not in event
        assert event["user"]["username"] == "kubernetes-admin" and event["objectRef"]["resource"] == "configmaps"
    for cp, address in _control_planes(cluster).items():
        flags = cluster.ssh(address, "sudo -n cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
        assert f"--audit-log-path={AUDIT_LOG}" in flags and "--audit-log-maxsize=100" in flags, cp
        listing = cluster.ssh(address, f"sudo -n ls {AUDIT_LOG}", check=False)
        assert listing.returncode == 0, f"{cp}: no audit log"


def privileged_pods_are_refused(cluster) -> None:
    image = "docker.io/local/busybox:lab"
    privileged = json.dumps({"spec": {"containers": [{"name": "c", "image": image, "securityContext": {"privileged": True}}]}})
    r = _kubectl(cluster, "-n", "default", "run", "ccp-psa-privileged", f"--image={image}", "--restart=Never",
                 f"--overrides={privileged}", "--dry-run=server")
    assert r.returncode != 0 and 'violates PodSecurity "baseline:latest"' in r.stderr, r.stdout + r.stderr
    r = _kubectl(cluster, "-n", "default", "run", "ccp-psa-plain", f"--image={image}", "--restart=Never", "--dry-run=server")
    assert r.returncode == 0 and "restricted:latest" in r.stderr, "accepted, with restricted's warning: " + r.stderr

    labels = json.loads(cluster.kubectl("get", "namespace", "local-path-storage", "-o", "json"))["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "privileged"
    # every add-on pod runs under the namespace's level; a short-lived one (local-path's helper pod deleting the
    # validation's volume) may be Pending for a moment on a loaded host (CI: it was), so this waits up to 2 minutes
    deadline = time.monotonic() + 120
    while True:
        pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json"))["items"]
        phases = {ns: {p["metadata"]["name"]: p["status"]["phase"] for p in pods if p["metadata"]["namespace"] == ns}
                  for ns in ("kube-system", "local-path-storage")}
        if all(mine and set(mine.values()) <= {"Running", "Succeeded"} for mine in phases.values()):
            break
        assert time.monotonic() < deadline, phases
        time.sleep(3)
    events = json.loads(cluster.kubectl("get", "events", "-A", "--field-selector", "reason=FailedCreate", "-o", "json"))
    refused = [e["message"] for e in events["items"] if "PodSecurity" in e.get("message", "")]
    assert refused == [], refused
