"""The hardening section's node script run for real over what the real kubeadm (the shared build) makes from
ccp's rendered init.yaml in a scratch root (kubeadm --rootfs: PKI, kubeconfigs, static pod manifests, the
kubelet's configuration and flags): every check passes on what ccp renders today; the same configuration without
ccp's profiling flags (as ccp rendered it before) is caught; a world-readable key planted in the PKI is named,
and passes again once removed. The anonymous-auth check's RBAC side runs against the real kube-apiserver in
test_apiserver_security_real.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import example_data, small_config, write_config
from tests.e2e.test_kubeadm_real import _filled, _run_phases, kubeadm   # noqa: F401  (kubeadm: the fixture)

pytestmark = pytest.mark.e2e
NODE_PATHS = ("/etc/kubernetes", "/var/lib/kubelet", "/etc/default/kubelet", "/var/lib/ccp")


def node_facts(root: Path):
    """hardening.NODE_SCRIPT run by sh with the node's paths moved under ``root``; its output as a node prints it."""
    from ccp.diagnose import hardening

    script = hardening.NODE_SCRIPT
    for p in NODE_PATHS:
        script = script.replace(p, f"{root}{p}")
    r = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return hardening.parse(r.stdout.replace(str(root), ""))


def judged(root: Path, security) -> dict:
    from ccp.diagnose import hardening

    found = hardening.findings({"cp-1": node_facts(root)}, {"cp-1"}, security, None)
    return {f.check: f for f in found}


def kubeadm_root(kubeadm: Path, tmp_path: Path, data: dict, edit=None) -> tuple[Path, object]:   # noqa: F811
    from ccp import render
    from ccp.config.load import load

    loaded = load(write_config(tmp_path / "c.yaml", data))
    out = render.render_all(loaded)
    (init_rel,) = [p for p in out.files if p.startswith("kubeadm/") and p.endswith("init.yaml")]
    text = out.files[init_rel]
    if edit:
        text = edit(text)
    root = tmp_path / "root"
    _run_phases(kubeadm, _filled(text), root)
    return root, loaded.config.spec.security


@pytest.mark.parametrize("source", ["examples/cluster.yaml", "small"])
def test_every_check_passes_on_what_ccp_renders_and_a_planted_key_is_named(kubeadm, tmp_path, source):   # noqa: F811
    root, security = kubeadm_root(kubeadm, tmp_path, example_data() if source == "examples/cluster.yaml" else small_config())
    by = judged(root, security)
    not_ok = {c: (f.severity, f.what) for c, f in by.items() if f.severity != "ok" and c != "anonymous-auth"}
    assert not_ok == {}
    assert by["anonymous-auth"].severity == "warn" and "no kubeconfig" in by["anonymous-auth"].what   # RBAC not given here
    assert {"profiling", "etcd-client-tls", "file-modes", "kubelet-read-only-port", "kubelet-anonymous-auth",
            "admission-plugins", "audit", "encryption"} <= set(by)
    assert "private keys, kubeconfigs" in by["file-modes"].what

    planted = root / "etc" / "kubernetes" / "pki" / "ccp-planted.key"
    planted.write_text("not a real key\n")
    planted.chmod(0o644)
    f = judged(root, security)["file-modes"]
    assert f.severity == "fail" and "/etc/kubernetes/pki/ccp-planted.key" in f.what
    assert "cp-1: /etc/kubernetes/pki/ccp-planted.key is 644, owned by root" in f.evidence
    planted.unlink()
    assert judged(root, security)["file-modes"].severity == "ok"


def test_the_profiling_ccp_rendered_before_is_caught(kubeadm, tmp_path):   # noqa: F811
    def without_profiling(text: str) -> str:
        docs = list(yaml.safe_load_all(text))
        for d in docs:
            if d and d.get("kind") == "ClusterConfiguration":
                d["apiServer"]["extraArgs"] = [a for a in d["apiServer"]["extraArgs"] if a["name"] != "profiling"]
                del d["controllerManager"], d["scheduler"]
        return yaml.safe_dump_all(docs)
    root, security = kubeadm_root(kubeadm, tmp_path, small_config(), without_profiling)
    f = judged(root, security)["profiling"]
    assert f.severity == "warn" and f.evidence == ["cp-1: kube-apiserver", "cp-1: kube-controller-manager",
                                                   "cp-1: kube-scheduler"]
