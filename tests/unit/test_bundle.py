"""The offline bundle: the manifest of the example configs, a synthetic bundle made from a directory
(complete, one item missing, one hash wrong), and the install's preflight refusing an incomplete one."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from ccp.bundle import archive
from ccp.bundle.manifest import items
from ccp.errors import CcpError
from tests.conftest import example_data, run_ccp, write_config


def cfg_of(tmp_path, name="c.yaml", **spec):
    from ccp.config.load import load

    data = example_data()
    data["spec"].update(spec)
    return load(write_config(tmp_path / name, data)).config, tmp_path / name


def fill(source, needed):
    """A site's directory, filled as from its mirror: one small file per item, named as the manifest expects."""
    for i in needed:
        rel = (i.pattern.replace("*/vmware", "mirror.example/vmware").replace("2.*/", "2.11.0/")
               .replace("v2.*", "v2.11.0_x5").replace("-*", "-1.1").replace("2.1*", "2.1.4-0ubuntu1").replace("*", "1.6.0"))
        assert i.matches(rel), (i.pattern, rel)
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes(f"{i.kind}:{i.name}:{i.version}".encode())


def test_manifest_of_the_example_configs(tmp_path):
    cfg, _ = cfg_of(tmp_path)
    found = items(cfg)
    kinds = {i.kind for i in found}
    assert kinds == {"image", "package", "terraform-provider"}
    names = {i.name for i in found}
    assert {"registry.k8s.io/kube-apiserver", "registry.k8s.io/etcd", "registry.k8s.io/pause",
            "docker.io/cloudnativelabs/kube-router", "quay.io/prometheus/prometheus",
            "docker.elastic.co/elasticsearch/elasticsearch", "kubeadm", "kubelet", "kubectl", "containerd"} <= names
    apiserver = next(i for i in found if i.name == "registry.k8s.io/kube-apiserver")
    assert apiserver.version == "v" + cfg.spec.kubernetes.version
    native, _ = cfg_of(tmp_path, "native.yaml", provisioner="native")
    assert "terraform-provider" not in {i.kind for i in items(native)}
    small = example_data()
    small["spec"]["addons"]["monitoring"]["enabled"] = False
    from ccp.config.load import load

    lean = load(write_config(tmp_path / "lean.yaml", small)).config
    assert "quay.io/prometheus/prometheus" not in {i.name for i in items(lean)}
    r = run_ccp("bundle", "manifest", "--config", tmp_path / "c.yaml", "--output", "json")
    assert r.code == 0 and len(json.loads(r.out)["items"]) == len(found)


def test_create_and_verify_complete_missing_and_wrong_hash(tmp_path):
    cfg, path = cfg_of(tmp_path)
    needed = items(cfg)
    src = tmp_path / "mirror"
    fill(src, needed)
    out = tmp_path / "bundle.tar"
    r = run_ccp("bundle", "create", "--config", path, "--from", src, "--out", out)
    assert r.code == 0, r.text
    with tarfile.open(out) as tar:
        assert tar.getnames()[0] == "bundle.json"
    r = run_ccp("bundle", "verify", "--config", path, "--bundle", out)
    assert r.code == 0 and f"all {len(needed)} items present" in r.out

    # one missing at the source: create lists exactly that one
    victim = next(src.glob("packages/kubelet_*"))
    victim.unlink()
    r = run_ccp("bundle", "create", "--config", path, "--from", src, "--out", tmp_path / "b2.tar")
    assert r.code == 2 and "1 of" in r.err and "package kubelet" in r.err

    # a bundle without that item, and one whose file no longer matches its index
    def rewrite(dst, drop=None, tamper=None):
        with tarfile.open(out) as tin, tarfile.open(dst, "w") as tout:
            for m in tin.getmembers():
                data = tin.extractfile(m).read()
                if drop and drop in m.name:
                    continue
                if tamper and tamper in m.name:
                    data += b"!"
                    m.size = len(data)
                tout.addfile(m, io.BytesIO(data))
    rewrite(tmp_path / "lacking.tar", drop="kubelet_")
    rewrite(tmp_path / "tampered.tar", tamper="kube-apiserver")
    v = archive.verify(needed, tmp_path / "lacking.tar")
    assert [m.split(" (")[0] for m in v.missing] == [f"package kubelet {cfg.spec.kubernetes.version}"] and not v.damaged
    v = archive.verify(needed, tmp_path / "tampered.tar")
    assert len(v.damaged) == 1 and "kube-apiserver" in v.damaged[0] and not v.missing
    r = run_ccp("bundle", "verify", "--config", path, "--bundle", tmp_path / "tampered.tar")
    assert r.code == 3 and "damaged: image registry.k8s.io/kube-apiserver" in r.err
    with pytest.raises(CcpError):
        archive.verify(needed, tmp_path / "nope.tar")


def test_install_refuses_to_start_with_an_incomplete_bundle(tmp_path):
    cfg, path = cfg_of(tmp_path)
    src = tmp_path / "mirror"
    fill(src, items(cfg))
    out = tmp_path / "bundle.tar"
    assert run_ccp("bundle", "create", "--config", path, "--from", src, "--out", out).code == 0
    with tarfile.open(out) as tin, tarfile.open(tmp_path / "lacking.tar", "w") as tout:
        for m in tin.getmembers():
            if "etcd_" not in m.name:
                tout.addfile(m, tin.extractfile(m))
    data = example_data()
    data["spec"]["offline"] = {"bundle": "lacking.tar"}
    path = write_config(tmp_path / "c.yaml", data)
    r = run_ccp("install", "--config", path, "--yes", "--until", "preflight/offline-bundle")
    assert r.code == 3, r.text
    assert "missing: image registry.k8s.io/etcd" in r.err and "preflight/offline-bundle" in r.err
    data["spec"]["offline"] = {"bundle": "bundle.tar"}
    write_config(path, data)
    r = run_ccp("install", "--config", path, "--yes", "--until", "preflight/offline-bundle")
    assert r.code == 0, r.text


def test_an_offline_cluster_renders_its_node_script_for_the_bundle(tmp_path):
    import shutil
    import subprocess

    from ccp import render
    from ccp.config.load import load

    data = example_data()
    data["spec"]["offline"] = {"bundle": "bundle.tar"}
    out = render.render_all(load(write_config(tmp_path / "c.yaml", data)))
    script = out.files["scripts/demo-cp-1/prepare-node.sh"]
    assert "ctr -n k8s.io images import" in script and "/var/lib/ccp/images/*.tar" in script
    assert "Release.key" not in script and "/var/lib/ccp/packages/*.deb" in script   # nothing from the internet
    f = tmp_path / "prepare-node.sh"
    f.write_text(script)
    assert subprocess.run(["bash", "-n", str(f)]).returncode == 0
    if shutil.which("shellcheck"):
        r = subprocess.run(["shellcheck", "-s", "bash", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout


def test_a_bundle_for_an_upgrade_holds_both_versions_and_each_use_takes_only_its_own(tmp_path):
    """`bundle create --with-bom` packs the running version and an upgrade's target (the lab's two builds);
    the install's nodes get only the running version's files from it (two kubeadm packages would make
    apt refuse both), the upgrade's stage step only what the target adds; a bundle without the target is
    refused before an upgrade's plan is shown, naming every missing item."""
    from ccp.bundle.manifest import items_with
    from ccp.bundle.archive import node_files
    from ccp.config.load import load
    from ccp.config.versions import retarget
    from ccp.errors import ConfigError
    from ccp.upgrade.stage import check_bundle, new_items
    from tests.conftest import EXAMPLES

    cfg = load(EXAMPLES / "local.yaml").config
    next_bom = EXAMPLES / "lab" / "bom-next.yaml"
    target = retarget(cfg, "1.35.0-lab.1", str(next_bom))
    added = new_items(cfg, target)
    assert sorted((i.kind, i.name) for i in added) == sorted(
        [("package", p) for p in ("kubeadm", "kubelet", "kubectl")] +
        [("image", f"registry.k8s.io/{c}") for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")])
    both = items_with(cfg, [next_bom])
    assert len(both) == len(items(cfg)) + len(added)
    src = tmp_path / "mirror"
    fill(src, both)
    config = EXAMPLES / "local.yaml"
    r = run_ccp("bundle", "create", "--config", config, "--with-bom", next_bom, "--from", src, "--out", tmp_path / "both.tar")
    assert r.code == 0, r.text
    assert run_ccp("bundle", "verify", "--config", config, "--with-bom", next_bom, "--bundle", tmp_path / "both.tar").code == 0
    install = node_files(tmp_path / "both.tar", items(cfg), "/p", "/i", verify=True)
    assert any("kubeadm_1.35.0~alpha.0" in p for p in install) and not any("lab.1" in p for p in install), sorted(install)
    staged = node_files(tmp_path / "both.tar", added, "/p", "/i", verify=True)
    assert len(staged) == 7 and all("lab.1" in p for p in staged), sorted(staged)
    check_bundle(cfg, target, tmp_path / "both.tar")   # complete: no error

    assert run_ccp("bundle", "create", "--config", config, "--from", src, "--out", tmp_path / "one.tar").code == 0
    with pytest.raises(ConfigError) as info:
        check_bundle(cfg, target, tmp_path / "one.tar")
    assert "lacks 7 items the upgrade to 1.35.0-lab.1 needs" in info.value.message and "--with-bom" in info.value.resolution
    assert len(info.value.details) == 7
    from ccp.errors import PreflightError

    with pytest.raises(PreflightError) as info:   # not a tar: a coded error, never a traceback
        node_files(tmp_path / "mirror" / next(p.name for p in (tmp_path / "mirror").rglob("*.deb")), added, "/p", "/i",
                   verify=True)
    assert "cannot be read" in info.value.message


def test_upgrade_of_an_air_gapped_cluster_stages_before_the_first_node():
    from ccp.config.load import load
    from ccp.upgrade.plan import plan
    from tests.conftest import EXAMPLES

    cfg = load(EXAMPLES / "local.yaml").config
    kinds = [s.kind for s in plan(cfg, "1.35.0-alpha.0", "1.35.0-lab.1")]
    assert kinds[:4] == ["preflight", "backup", "stage", "control-plane"]
    stage = plan(cfg, "1.35.0-alpha.0", "1.35.0-lab.1")[2]
    assert stage.nodes == ["local-cp-1", "local-cp-2", "local-cp-3", "local-worker-1", "local-worker-2"]
