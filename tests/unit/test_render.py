"""Rendered files: golden copies, Terraform formatting and structure, kubeadm and load-balancer
configs that agree with cluster.yaml, and writes that touch only what changed."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

from ccp import render
from ccp.config import inventory
from ccp.config.load import load
from tests.conftest import ROOT, example_data, small_config, write_config

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("CCP_UPDATE_GOLDEN") == "1"
CASES = {"example": example_data, "small": small_config}


def hcl(path: Path) -> dict:
    """Parse HCL; python-hcl2 keeps quotes on block labels and string values: strip them."""
    def norm(x):
        if isinstance(x, dict):
            return {k.strip('"'): norm(v) for k, v in x.items() if k != "__is_block__"}
        if isinstance(x, list):
            return [norm(v) for v in x]
        return x.strip('"') if isinstance(x, str) else x
    return norm(hcl2.loads(path.read_text()))


def rendered_for(tmp_path, case: str):
    loaded = load(write_config(tmp_path / f"{case}.yaml", CASES[case]()))
    return loaded, render.render_all(loaded)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(tmp_path, case):
    _, out = rendered_for(tmp_path, case)
    golden = GOLDEN / case
    if UPDATE:
        shutil.rmtree(golden, ignore_errors=True)
        for rel, text in out.files.items():
            (golden / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden / rel).write_text(text)
    expected = {str(p.relative_to(golden)) for p in golden.rglob("*") if p.is_file()}
    assert expected == set(out.files), "file set differs from the golden copy (CCP_UPDATE_GOLDEN=1 regenerates)"
    for rel, text in out.files.items():
        assert (golden / rel).read_text() == text, f"{rel} differs from tests/golden/{case}/{rel}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_terraform_fmt_and_structure(tmp_path, case):
    loaded, out = rendered_for(tmp_path, case)
    render.write(out, tmp_path / "r")
    tf = tmp_path / "r" / "terraform"
    proc = subprocess.run(["terraform", "fmt", "-check", "-diff", "-recursive", str(tf)],
                          capture_output=True, text=True, env={**os.environ, "TF_CLI_CONFIG_FILE": "/dev/null"})
    assert proc.returncode == 0, proc.stdout + proc.stderr

    main, versions, variables = (hcl(tf / f) for f in ("main.tf", "versions.tf", "variables.tf"))
    providers = versions["terraform"][0]["required_providers"][0]
    assert providers["vsphere"]["source"] == "vmware/vsphere"
    resources = {(t, n): body for r in main["resource"] for t, named in r.items() for n, body in named.items()}
    vm = resources[("vsphere_virtual_machine", "node")]
    assert vm["for_each"] == "${var.nodes}" and vm["enable_disk_uuid"] is True
    assert {"guestinfo.userdata", "guestinfo.metadata"} <= set(vm["extra_config"])
    assert vm["clone"][0]["template_uuid"] == "${data.vsphere_virtual_machine.template.id}"
    assert ("vsphere_compute_cluster_vm_anti_affinity_rule", "spread") in resources
    assert main["provider"][0]["vsphere"]["password"] == "${var.vsphere_password}"
    data_sources = {t for d in main["data"] for t in d}
    assert {"vsphere_datacenter", "vsphere_datastore", "vsphere_network", "vsphere_virtual_machine"} <= data_sources
    pw = next(v["vsphere_password"] for v in variables["variable"] if "vsphere_password" in v)
    assert pw["sensitive"] is True and "default" not in pw

    tfvars = json.loads((tf / "terraform.tfvars.json").read_text())
    nodes = inventory.build(loaded.config)
    assert set(tfvars["nodes"]) == {n.name for n in nodes}
    for n in nodes:
        assert tfvars["nodes"][n.name] == {"role": n.role, "address": str(n.address), "cpus": n.cpus,
                                           "memory": n.memoryMiB, "disk_gib": n.diskGiB}
    assert "password" not in json.dumps(tfvars["vsphere"])


def _docs(text):
    return list(yaml.safe_load_all(text))


@pytest.mark.parametrize("case", sorted(CASES))
def test_kubeadm_agrees_with_cluster_yaml(tmp_path, case):
    loaded, out = rendered_for(tmp_path, case)
    cfg = loaded.config
    nodes = inventory.build(cfg)
    cps = inventory.by_role(nodes, inventory.ROLE_CP)
    init = {d["kind"]: d for d in _docs(out.files[f"kubeadm/{cps[0].name}/init.yaml"])}
    cc = init["ClusterConfiguration"]
    assert cc["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert cc["kubernetesVersion"] == f"v{cfg.spec.kubernetes.version}"
    host, port = cc["controlPlaneEndpoint"].rsplit(":", 1)
    assert host == str(cfg.spec.loadBalancer.vip) and port == "6443"
    assert cc["networking"]["podSubnet"] == str(cfg.spec.kubernetes.podCIDR)
    assert cc["networking"]["serviceSubnet"] == str(cfg.spec.kubernetes.serviceCIDR)
    sans = set(cc["apiServer"]["certSANs"])
    assert str(cfg.spec.loadBalancer.vip) in sans
    assert {str(n.address) for n in cps} <= sans
    assert init["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert init["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == str(cps[0].address)
    for node in nodes:
        if node.role == inventory.ROLE_LB:
            assert f"kubeadm/{node.name}/join.yaml" not in out.files
            continue
        (join,) = _docs(out.files[f"kubeadm/{node.name}/join.yaml"])
        assert join["kind"] == "JoinConfiguration"
        assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == cc["controlPlaneEndpoint"]
        assert join["nodeRegistration"]["name"] == node.name
        assert ("controlPlane" in join) == node.is_control_plane


@pytest.mark.parametrize("case", sorted(CASES))
def test_load_balancer_and_cloud_init(tmp_path, case):
    loaded, out = rendered_for(tmp_path, case)
    cfg = loaded.config
    nodes = inventory.build(cfg)
    cps = inventory.by_role(nodes, inventory.ROLE_CP)
    lbs = inventory.by_role(nodes, inventory.ROLE_LB)
    for lb in lbs:
        conf = out.files[f"nginx/{lb.name}/nginx.conf"]
        health = out.files[f"nginx/{lb.name}/apiserver-health.sh"]
        assert "include ccp-apiservers.conf;" in conf
        assert f'SERVERS="{" ".join(str(cp.address) for cp in cps)}"' in health
    holders = lbs or cps
    for node in holders:
        ka = out.files[f"keepalived/{node.name}/keepalived.conf"]
        assert f"{cfg.spec.loadBalancer.vip}/24" in ka
        if len(holders) > 1:
            assert f"unicast_src_ip {node.address}" in ka
            for peer in holders:
                assert str(peer.address) in ka
        else:
            assert "unicast_peer" not in ka   # keepalived rejects an empty peer list
    if not lbs:
        assert not any(p.startswith("nginx/") for p in out.files)
    for node in nodes:
        ud = out.files[f"cloud-init/{node.name}/user-data"]
        assert ud.startswith("#cloud-config\n")
        data = yaml.safe_load(ud)
        assert data["hostname"] == node.name
        assert data["users"][0]["ssh_authorized_keys"][0].startswith("ssh-ed25519 ")
        if node.role != inventory.ROLE_LB:
            assert "vm.max_map_count = 262144" in ud
        net = yaml.safe_load(out.files[f"cloud-init/{node.name}/network-config"])
        (eth,) = net["ethernets"].values()
        assert ipaddress.ip_interface(eth["addresses"][0]).ip == node.address
        meta = yaml.safe_load(out.files[f"cloud-init/{node.name}/meta-data"])
        import base64
        assert yaml.safe_load(base64.b64decode(meta["network"])) == net


def test_write_is_idempotent_and_prunes_only_its_own_files(tmp_path):
    data = example_data()
    loaded = load(write_config(tmp_path / "c.yaml", data))
    out_dir = tmp_path / "r"
    first = render.write(render.render_all(loaded), out_dir)
    assert {c.action for c in first} == {"create"}
    (out_dir / "mine.txt").write_text("user file")
    mtime = (out_dir / "terraform" / "main.tf").stat().st_mtime_ns
    second = render.write(render.render_all(loaded), out_dir)
    assert {c.action for c in second} == {"keep"}
    assert (out_dir / "terraform" / "main.tf").stat().st_mtime_ns == mtime
    assert oct((out_dir / "terraform" / "main.tf").stat().st_mode & 0o777) == "0o600"

    data["spec"]["nodes"]["workers"][0]["count"] = 2
    smaller = load(write_config(tmp_path / "c.yaml", data))
    third = render.write(render.render_all(smaller), out_dir)
    deleted = {c.path for c in third if c.action == "delete"}
    assert "cloud-init/demo-default-3/user-data" in deleted
    assert not (out_dir / "cloud-init" / "demo-default-3").exists()
    assert (out_dir / "mine.txt").exists()


def test_missing_public_key_is_a_config_error(tmp_path):
    from ccp.errors import ConfigError

    data = example_data()
    data["spec"]["ssh"]["privateKeyFile"] = str(tmp_path / "nokey")
    loaded = load(write_config(tmp_path / "c.yaml", data))
    with pytest.raises(ConfigError) as info:
        render.render_all(loaded)
    assert "ssh-keygen" in info.value.resolution


def test_every_bom_version_renders(tmp_path):
    from ccp.config import versions

    for minor in versions.supported_minors():
        data = example_data()
        data["spec"]["kubernetes"]["version"] = f"{minor}.0"
        out = render.render_all(load(write_config(tmp_path / "c.yaml", data)))
        init = out.files["kubeadm/demo-cp-1/init.yaml"]
        assert f"kubernetesVersion: v{minor}.0" in init
        assert versions.bom_for(f"{minor}.0").etcd in init
