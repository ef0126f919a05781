"""provisioner: local and a build of one's own (kubernetes.billOfMaterials, kubeadm and kubelet settings):
the example loads, each mistake is reported at its field with what to do, and the rendered kubeadm files
carry the settings (the real kubeadm judges them in tests/e2e/test_kubeadm_real.py)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from ccp import render
from ccp.config.load import load
from ccp.config.versions import bom_of
from tests.conftest import EXAMPLES
from tests.unit.test_config import errors_of


def local_copy(tmp_path, edit=None, bom_edit=None):
    """examples/local.yaml with its lab/ directory, in tmp_path, optionally edited."""
    shutil.copytree(EXAMPLES / "lab", tmp_path / "lab")
    data = yaml.safe_load((EXAMPLES / "local.yaml").read_text())
    if edit:
        edit(data["spec"])
    if bom_edit:
        bom = yaml.safe_load((tmp_path / "lab" / "bom.yaml").read_text())
        bom_edit(bom)
        (tmp_path / "lab" / "bom.yaml").write_text(yaml.safe_dump(bom))
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_local_example_loads():
    cfg = load(EXAMPLES / "local.yaml").config
    assert cfg.spec.provisioner == "local" and cfg.spec.vsphere is None
    bom = bom_of(cfg)
    assert bom.kubernetes == "1.35.0-alpha.0" and bom.deb_version == "1.35.0~alpha.0"
    assert bom.coredns is None and "coredns" not in bom.core_images()
    assert bom.core_images()["etcd"] == "registry.k8s.io/etcd:3.5.1-0"
    assert cfg.spec.kubernetes.minor == "1.35"


def test_pre_release_needs_a_bill_of_materials(tmp_path):
    errs = errors_of(local_copy(tmp_path, lambda s: s["kubernetes"].pop("billOfMaterials")))
    assert any(e["path"] == "spec.kubernetes.version" and "pre-release" in e["msg"] for e in errs)
    assert "billOfMaterials" in errs[0]["full"]


def test_bill_of_materials_must_match_the_version(tmp_path):
    errs = errors_of(local_copy(tmp_path, bom_edit=lambda b: b.update(kubernetes="1.35.1")))
    (e,) = errs
    assert e["path"] == "spec.kubernetes.version" and "1.35.1" in e["msg"] and 'version: "1.35.1"' in e["full"]


def test_no_coredns_image_needs_the_phase_skipped(tmp_path):
    errs = errors_of(local_copy(tmp_path, lambda s: s["kubernetes"]["kubeadm"].update(skipPhases=[])))
    (e,) = errs
    assert e["path"] == "spec.kubernetes.kubeadm.skipPhases" and "addon/coredns" in e["full"]


@pytest.mark.parametrize("bom_edit, words", [
    (lambda b: b.update(colour="blue"), "unknown keys colour"),
    (lambda b: b.pop("etcd"), "missing etcd"),
    (lambda b: b.update(images=["a"]), "images must map names to strings"),
])
def test_malformed_bill_of_materials_is_reported_at_its_field(tmp_path, bom_edit, words):
    (e,) = errors_of(local_copy(tmp_path, bom_edit=bom_edit))
    assert e["path"] == "spec.kubernetes.billOfMaterials" and words in e["msg"]


def test_missing_files_are_reported_at_their_fields(tmp_path):
    def edit(s):
        s["kubernetes"]["billOfMaterials"] = "nope/bom.yaml"
        s["kubernetes"]["kubeadm"]["patches"] = "nope/patches"
    errs = {e["path"]: e for e in errors_of(local_copy(tmp_path, edit))}
    assert "does not exist" in errs["spec.kubernetes.billOfMaterials"]["msg"]
    assert "does not exist" in errs["spec.kubernetes.kubeadm.patches"]["msg"]


def test_local_interface_is_host0(tmp_path):
    (e,) = errors_of(local_copy(tmp_path, lambda s: s["nodes"]["network"].update(interface="ens192")))
    assert e["path"] == "spec.nodes.network.interface" and "host0" in e["full"]


def test_preflight_errors_are_named_never_all(tmp_path):
    (e,) = errors_of(local_copy(tmp_path, lambda s: s["kubernetes"]["kubeadm"].update(ignorePreflightErrors=["all"])))
    assert e["path"] == "spec.kubernetes.kubeadm.ignorePreflightErrors" and "name the checks" in e["full"]


def test_rendered_kubeadm_carries_the_build_settings():
    out = render.render_all(load(EXAMPLES / "local.yaml")).files
    init = list(yaml.safe_load_all(out["kubeadm/local-cp-1/init.yaml"]))
    assert init[0]["nodeRegistration"]["ignorePreflightErrors"] == ["HTTPProxyCIDR", "CreateJob"]
    assert init[0]["skipPhases"] == ["addon/coredns"]
    assert init[0]["patches"] == {"directory": render.KUBEADM_PATCHES_DIR}
    assert "dns" not in init[1] and init[1]["etcd"]["local"]["imageTag"] == "3.5.1-0"
    assert init[2]["failCgroupV1"] is False
    assert init[3]["conntrack"] == {"maxPerCore": 0}
    cp_join = yaml.safe_load(out["kubeadm/local-cp-2/join.yaml"])
    worker_join = yaml.safe_load(out["kubeadm/local-worker-1/join.yaml"])
    assert cp_join["patches"] == {"directory": render.KUBEADM_PATCHES_DIR} and "patches" not in worker_join
    assert "skipPhases" not in cp_join   # addon/coredns is not a join phase
    assert worker_join["nodeRegistration"]["ignorePreflightErrors"] == ["HTTPProxyCIDR", "CreateJob"]
    # no VM: no cloud-init, no Terraform; the node script pins the Debian form of the pre-release
    assert not any(p.startswith(("cloud-init/", "terraform/")) for p in out)
    assert 'want="1.35.0~alpha.0"' in out["scripts/local-cp-1/prepare-node.sh"]


def test_bundle_manifest_follows_the_bill_of_materials():
    from ccp.bundle.manifest import items

    found = items(load(EXAMPLES / "local.yaml").config)
    packages = {i.name: i.pattern for i in found if i.kind == "package"}
    assert packages["kubeadm"] == "packages/kubeadm_1.35.0~alpha.0-*_*.deb"
    assert set(packages) == {"kubeadm", "kubelet", "kubectl", "containerd", "runc", "containernetworking-plugins"}
    images = {f"{i.name}:{i.version}" for i in found if i.kind == "image"}
    assert "docker.io/cloudnativelabs/kube-router:v1.2.2" in images
    assert "docker.io/rancher/local-path-provisioner:v0.0.37" in images
    assert "docker.io/library/busybox:1.35.0" in images
    assert not any("coredns" in i for i in images) and not any(i.kind == "terraform-provider" for i in found)


def test_diagnose_names_missing_local_machines(tmp_path):
    """ccp diagnose with provisioner: local reads the machines on this host (here: none exist)."""
    from ccp.config import inventory
    from ccp.diagnose import machines

    path = local_copy(tmp_path, lambda s: s.update(local={"machinesDir": str(tmp_path / "m"), "rootfsCache": str(tmp_path / "r")}))
    cfg = load(path).config
    (f,) = machines.findings(cfg, inventory.build(cfg))
    assert (f.section, f.check, f.severity) == ("machines", "present", "fail") and "7 machines" in f.what
    assert "ccp install" in f.remediation


def test_a_missing_ssh_public_key_is_a_config_error_not_a_ccp_bug(tmp_path, monkeypatch):
    """Found by hand on real nodes: `ccp plan` of a local cluster whose key file is not there said "internal
    error: FileNotFoundError ... this is a ccp bug"; it names the file and the fix, in the config family."""
    from tests.conftest import run_ccp

    path = local_copy(tmp_path, lambda s: s.update(ssh={**s["ssh"], "privateKeyFile": str(tmp_path / "nokey")},
                                                   local={"machinesDir": str(tmp_path / "m"), "rootfsCache": str(tmp_path / "r")}))
    monkeypatch.setenv("CCP_STATE_DIR", str(tmp_path / "state"))
    r = run_ccp("plan", "--config", path)
    assert "internal error" not in r.text and "ccp bug" not in r.text, r.text
    assert f"provision: cannot probe: SSH public key {tmp_path / 'nokey.pub'} cannot be read" in r.text, r.text
