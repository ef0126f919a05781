"""The CNI manifests against each supported Kubernetes version's schema (strict, all errors), node
readiness waiting against a fake Kubernetes port, and kubeconfig renaming and merging."""

from __future__ import annotations

import pytest
import yaml

from ccp import render
from ccp.config import versions
from ccp.config.load import load
from ccp.errors import KubernetesError
from ccp.phases.kubeconfig import merge, rename
from ccp.remote.kube import NodeState, wait_nodes_ready
from tests.conftest import example_data, write_config
from tests.k8s_schema import errors


@pytest.mark.parametrize("minor", versions.supported_minors())
@pytest.mark.parametrize("cni", ["kube-router", "flannel"])
def test_cni_manifests_match_the_kubernetes_schema(tmp_path, minor, cni):
    data = example_data()
    data["spec"]["kubernetes"]["version"] = f"{minor}.0"
    data["spec"]["addons"]["cni"]["name"] = cni
    out = render.render_all(load(write_config(tmp_path / "c.yaml", data)))
    docs = [d for d in yaml.safe_load_all(out.files[f"cni/{cni}.yaml"]) if d]
    assert any(d["kind"] == "DaemonSet" for d in docs)
    problems = [e for d in docs for e in errors(d, minor)]
    assert problems == []


def test_schema_check_reports_every_error():
    bad = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "x"},
           "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagee": "x"}]}}, "bogus": 1}}
    found = errors(bad, versions.supported_minors()[0])
    assert len(found) >= 2 and any("bogus" in e for e in found) and any("imagee" in e for e in found)


class KubePortFake:
    """A fake Kubernetes port: node readiness scripted per call."""

    def __init__(self, script):
        self.script = list(script)

    def nodes(self):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


def test_wait_nodes_ready_returns_once_all_are_ready():
    fake = KubePortFake([[NodeState("a", False, "KubeletNotReady: cni not initialized")],
                         [NodeState("a", True, ""), NodeState("b", False, "x")],
                         [NodeState("a", True, ""), NodeState("b", True, "")]])
    now = [0.0]
    seen = []
    states = wait_nodes_ready(fake, ["a", "b"], 60, interval=5, clock=lambda: now[0],
                              sleep=lambda s: now.__setitem__(0, now[0] + s), progress=seen.append)
    assert [s.name for s in states] == ["a", "b"] and now[0] == 10
    assert seen == ["0/2 nodes Ready", "1/2 nodes Ready"]


def test_wait_nodes_ready_names_the_stuck_nodes_and_why():
    fake = KubePortFake([[NodeState("a", True, ""), NodeState("b", False, "KubeletNotReady: container runtime network not ready")]])
    now = [0.0]
    with pytest.raises(KubernetesError) as info:
        wait_nodes_ready(fake, ["a", "b", "c"], 30, interval=10, clock=lambda: now[0],
                         sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert "2 of 3 nodes are not Ready after 30s" in info.value.message
    assert info.value.details == ["b: KubeletNotReady: container runtime network not ready",
                                  "c: not registered with the API server"]


def test_kubeconfig_rename_and_merge_keep_other_clusters(tmp_path):
    admin = {"clusters": [{"name": "kubernetes", "cluster": {"server": "https://10.0.0.5:6443"}}],
             "users": [{"name": "kubernetes-admin", "user": {"client-key-data": "x"}}],
             "contexts": [{"name": "kubernetes-admin@kubernetes", "context": {}}]}
    ours = rename(admin, "demo", "https://10.10.0.10:6443")
    assert ours["clusters"][0] == {"name": "demo", "cluster": {"server": "https://10.10.0.10:6443"}}
    assert ours["contexts"] == [{"name": "demo", "context": {"cluster": "demo", "user": "demo-admin"}}]
    existing = tmp_path / "config"
    existing.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "other",
                                        "clusters": [{"name": "other", "cluster": {}}, {"name": "demo", "cluster": {"server": "old"}}],
                                        "users": [{"name": "other", "user": {}}], "contexts": [{"name": "other", "context": {}}]}))
    merge(existing, ours)
    doc = yaml.safe_load(existing.read_text())
    assert [c["name"] for c in doc["clusters"]] == ["other", "demo"]
    assert doc["clusters"][1]["cluster"]["server"] == "https://10.10.0.10:6443"
    assert doc["current-context"] == "other", "merging does not switch the user's current context"
    assert oct(existing.stat().st_mode & 0o777) == "0o600"


def test_join_secrets_are_substituted_from_the_environment_only(tmp_path):
    """The join command fills the rendered JoinConfiguration with awk reading ENVIRON: the secrets never
    appear in any process's arguments, and the result is the kubeadm document with real values."""
    import subprocess

    from ccp.phases.kubeadm import JOIN

    out = render.render_all(load(write_config(tmp_path / "c.yaml", example_data())))
    cfg = tmp_path / "join.yaml"
    cfg.write_text(out.files["kubeadm/demo-cp-2/join.yaml"])
    script = JOIN.format(cfg=cfg, name="join").replace("/run/ccp", str(tmp_path / "run")).replace(
        "kubeadm join --config", "cat")
    secrets = {"CCP_BOOTSTRAP_TOKEN": "abcdef.0123456789abcdef", "CCP_CA_CERT_HASH": "sha256:" + "d" * 64,
               "CCP_CERTIFICATE_KEY": "c" * 64}
    assert not any(v in script for v in secrets.values())
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", **secrets})
    assert proc.returncode == 0, proc.stderr
    doc = yaml.safe_load(proc.stdout)
    assert doc["discovery"]["bootstrapToken"]["token"] == secrets["CCP_BOOTSTRAP_TOKEN"]
    assert doc["discovery"]["bootstrapToken"]["caCertHashes"] == [secrets["CCP_CA_CERT_HASH"]]
    assert doc["controlPlane"]["certificateKey"] == secrets["CCP_CERTIFICATE_KEY"]
    assert not (tmp_path / "run" / "join.yaml").exists(), "the filled-in file is removed"


def test_init_takes_the_certificate_key_in_its_config_not_a_flag(tmp_path):
    """kubeadm refuses --certificate-key next to --config (found on real nodes): the key is filled into
    InitConfiguration.certificateKey on the node, from the environment, and the filled file is removed."""
    import subprocess

    from ccp.phases.kubeadm import INIT

    out = render.render_all(load(write_config(tmp_path / "c.yaml", example_data())))
    cfg = tmp_path / "init.yaml"
    cfg.write_text(out.files["kubeadm/demo-cp-1/init.yaml"])
    script = INIT.format(cfg=cfg, name="init")
    assert "--certificate-key" not in script and "kubeadm init --config /run/ccp/init.yaml" in script
    script = script.replace("/run/ccp", str(tmp_path / "run")).replace("kubeadm init --config", "cat").replace(
        " --upload-certs --skip-token-print --skip-certificate-key-print", "")
    key = "c" * 64
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CCP_CERTIFICATE_KEY": key, "CCP_BOOTSTRAP_TOKEN": "", "CCP_CA_CERT_HASH": ""})
    assert proc.returncode == 0, proc.stderr
    init = next(yaml.safe_load_all(proc.stdout))
    assert init["kind"] == "InitConfiguration" and init["certificateKey"] == key
    assert not (tmp_path / "run" / "init.yaml").exists()
