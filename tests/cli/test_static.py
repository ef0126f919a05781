"""provisioner: static — existing machines listed in spec.hosts: validated, rendered without
Terraform or cloud-init, recorded by the provision phase, never destroyed."""

from __future__ import annotations

import json

from tests.conftest import example_data, run_ccp, write_config


def static_config(hosts=None) -> dict:
    data = example_data()
    spec = data["spec"]
    spec["provisioner"] = "static"
    del spec["vsphere"]
    del spec["nodes"]["network"]["addresses"]
    spec["addons"]["storage"]["provider"] = "local-path"
    spec["hosts"] = hosts or [
        {"address": "10.10.0.31", "role": "control-plane"},
        {"address": "10.10.0.32", "role": "worker", "name": "metal-w1"},
        {"address": "10.10.0.33", "role": "worker"},
        {"address": "10.10.0.30", "role": "loadbalancer"},
    ]
    return data


def test_static_install_records_hosts_and_renders_no_vms(tmp_path):
    path = write_config(tmp_path / "c.yaml", static_config())
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision")
    assert r.code == 0, r.text
    rendered = tmp_path / ".ccp" / "demo" / "rendered"
    assert not (rendered / "terraform").exists() and not (rendered / "cloud-init").exists()
    assert (rendered / "kubeadm" / "demo-cp-1" / "init.yaml").exists()
    assert (rendered / "nginx" / "demo-lb-1" / "nginx.conf").exists()
    phases = {p["phase"]: p["status"] for p in json.loads(run_ccp("phases", "--config", path, "--output", "json").out)["phases"]}
    assert phases["provision"] == "done"
    assert "metal-w1" in r.out and "10.10.0.32" in r.out
    again = run_ccp("install", "--config", path, "--yes", "--until", "provision")
    assert again.err.count("already done") >= 3
    r = run_ccp("destroy", "--config", path, "--yes")
    assert r.code == 0 and "nothing to destroy" in r.out


def test_static_config_errors(tmp_path):
    data = static_config([{"address": "10.10.0.31", "role": "control-plane"},
                          {"address": "10.10.0.32", "role": "control-plane"},
                          {"address": "10.10.0.10", "role": "worker"},
                          {"address": "10.10.0.32", "role": "worker"}])
    data["spec"]["addons"]["storage"]["provider"] = "vsphere-csi"
    r = run_ccp("config", "validate", "--config", write_config(tmp_path / "c.yaml", data))
    assert r.code == 2
    assert "2 control-plane machines" in r.err
    assert "is the API VIP" in r.err
    assert "listed twice" in r.err
    assert "vsphere-csi needs the vsphere section" in r.err


def test_vm_provisioners_need_vsphere_and_no_hosts(tmp_path):
    data = example_data()
    del data["spec"]["vsphere"]
    data["spec"]["hosts"] = [{"address": "10.10.0.31", "role": "control-plane"}]
    r = run_ccp("config", "validate", "--config", write_config(tmp_path / "c.yaml", data))
    assert r.code == 2 and "needs the vsphere section" in r.err and "only provisioner: static uses" in r.err


def test_preflight_command_on_static_says_so(tmp_path):
    r = run_ccp("preflight", "--config", write_config(tmp_path / "c.yaml", static_config()))
    assert r.code == 2 and "no vCenter to check" in r.err
