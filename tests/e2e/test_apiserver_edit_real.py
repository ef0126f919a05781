"""What `ccp apply` changes on a running control plane when spec.security changes, judged by the real kubeadm (the
shared build): kube-apiserver's static pod manifest as kubeadm wrote it with spec.security off, edited by ccp
(ccp.cluster.apiserver.edit_manifest) to turn it all on, is the manifest kubeadm itself writes with it on — byte
for byte — and back; and kubeadm's ClusterConfiguration edited by ccp the same way makes kubeadm write that same
manifest (what a later `kubeadm upgrade` does from the kubeadm-config ConfigMap); and kubeadm-config as kubeadm
uploads it into a real kube-apiserver compares equal to what cluster.yaml says, and takes ccp's edit. Needs no root
and no cluster."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import small_config, write_config
from tests.e2e.test_apiserver_security_real import api_server, binaries  # noqa: F401  (fixtures)
from tests.e2e.test_kubeadm_real import _filled, _init_docs, kubeadm  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
OFF = {n: {"enabled": False} for n in ("encryption", "audit", "podSecurity")}


def _rendered_init(tmp_path, security: dict) -> tuple[str, object]:
    from ccp import render
    from ccp.config.load import load

    data = small_config()
    data["spec"]["security"] = security
    tmp_path.mkdir(parents=True)
    loaded = load(write_config(tmp_path / "c.yaml", data), defer_secrets=True)
    out = render.render_all(loaded)
    (rel,) = [p for p in out.files if p.startswith("kubeadm/") and p.endswith("init.yaml")]
    return _filled(out.files[rel]), loaded.config.spec.security


def _manifest(kubeadm, init_text: str, root) -> str:
    import subprocess

    root.mkdir(parents=True)
    (root / "init.yaml").write_text(init_text)
    for phase in (["certs", "all"], ["control-plane", "apiserver"]):
        r = subprocess.run([str(kubeadm), "init", "phase", *phase, "--config", "/init.yaml", "--rootfs", str(root)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"kubeadm init phase {' '.join(phase)}: {r.stdout}{r.stderr}"
    return (root / "etc" / "kubernetes" / "manifests" / "kube-apiserver.yaml").read_text()


def test_the_edited_manifest_is_the_one_kubeadm_writes(kubeadm, tmp_path):  # noqa: F811
    from ccp.cluster import apiserver

    off_init, off_security = _rendered_init(tmp_path / "off", OFF)
    on_init, on_security = _rendered_init(tmp_path / "on", {})
    off, on = _manifest(kubeadm, off_init, tmp_path / "root-off"), _manifest(kubeadm, on_init, tmp_path / "root-on")
    assert off != on

    turned_on = apiserver.edit_manifest(off, apiserver.wanted(on_security, True))
    assert yaml.safe_load(turned_on) == yaml.safe_load(on)
    assert turned_on == on, "kubeadm's own order and format"
    assert apiserver.managed(turned_on) == apiserver.expected(apiserver.wanted(on_security, True))
    turned_off = apiserver.edit_manifest(on, apiserver.wanted(off_security, False))
    assert turned_off == off


def test_the_edited_cluster_configuration_makes_kubeadm_write_the_same(kubeadm, tmp_path):  # noqa: F811
    from ccp.cluster import apiserver

    off_init, _ = _rendered_init(tmp_path / "off", OFF)
    on_init, on_security = _rendered_init(tmp_path / "on", {})
    docs = [d for d in yaml.safe_load_all(off_init) if d]
    cluster = next(d for d in docs if d["kind"] == "ClusterConfiguration")
    edited = yaml.safe_load(apiserver.edit_cluster_configuration(yaml.safe_dump(cluster), apiserver.wanted(on_security, True)))
    assert apiserver.cluster_configuration_managed(yaml.safe_dump(edited)) == apiserver.expected(apiserver.wanted(on_security, True))
    text = yaml.safe_dump_all([edited if d["kind"] == "ClusterConfiguration" else d for d in docs])
    assert _manifest(kubeadm, text, tmp_path / "root-edited") == _manifest(kubeadm, on_init, tmp_path / "root-on")
    assert _init_docs(on_init)["ClusterConfiguration"]["apiServer"]["extraArgs"] == edited["apiServer"]["extraArgs"]


def test_kubeadm_config_as_kubeadm_uploads_it_compares_equal_and_takes_the_edit(kubeadm, api_server, tmp_path,  # noqa: F811
                                                                              tmp_path_factory):
    """The kubeadm-config ConfigMap as the real kubeadm uploads it (`kubeadm init phase upload-config kubeadm` into a
    real kube-apiserver): security/apply reads it as already saying what cluster.yaml says (a fresh cluster plans no
    change), and its edit written back with ccp's own `kubectl replace -f -` is read by kubeadm again."""
    import json
    import subprocess

    from ccp.cluster import apiserver
    from tests.e2e.conftest import lab_binary
    from tests.e2e.test_apiserver_security_real import TOKEN

    api = api_server[0]
    kubectl = lab_binary(tmp_path_factory, "kubectl")
    kc = tmp_path / "admin.kubeconfig"
    kc.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": api.base, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}], "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    on_init, security = _rendered_init(tmp_path / "on", {})
    (tmp_path / "init.yaml").write_text(on_init)
    r = subprocess.run([str(kubeadm), "init", "phase", "upload-config", "kubeadm", "--config", str(tmp_path / "init.yaml"),
                        "--kubeconfig", str(kc)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    get = [str(kubectl), "--kubeconfig", str(kc), "-n", "kube-system", "get", "configmap", "kubeadm-config", "-o", "json"]
    cm = json.loads(subprocess.run(get, capture_output=True, text=True, check=True, timeout=60).stdout)
    text = cm["data"]["ClusterConfiguration"]
    assert apiserver.cluster_configuration_managed(text) == apiserver.expected(apiserver.wanted(security, True))

    _, smaller = _rendered_init(tmp_path / "smaller", {"audit": {"maxSizeMB": 200}})
    edited = apiserver.edit_cluster_configuration(text, apiserver.wanted(smaller, True))
    cm["data"]["ClusterConfiguration"] = edited
    r = subprocess.run([str(kubectl), "--kubeconfig", str(kc), "replace", "-f", "-"], input=json.dumps(cm),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    back = json.loads(subprocess.run(get, capture_output=True, text=True, check=True, timeout=60).stdout)["data"]["ClusterConfiguration"]
    assert apiserver.cluster_configuration_managed(back)[0]["audit-log-maxsize"] == "200"
    (tmp_path / "edited.yaml").write_text(back)
    r = subprocess.run([str(kubeadm), "config", "validate", "--config", str(tmp_path / "edited.yaml")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
