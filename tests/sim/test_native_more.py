"""More of the vSphere path on vcsim: TLS verification and thumbprint pinning, DRS anti-affinity for
control planes, linked clones from a template snapshot."""

from __future__ import annotations

import hashlib
import json
import ssl

import pytest

from tests.conftest import run_ccp
from tests.sim.test_native import SPACE, ours

pytestmark = pytest.mark.sim


def test_self_signed_certificate_is_refused_unless_pinned(sim_config, vcsim):
    path, data, write = sim_config
    data["spec"]["vsphere"]["insecure"] = False
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json")
    connect = json.loads(r.out)["checks"][0]
    assert r.code == 3 and connect["name"] == "connect" and connect["status"] == "fail"
    assert "does not trust" in connect["message"] and "thumbprint" in connect["remediation"]

    pem = ssl.get_server_certificate((vcsim.host, vcsim.port))
    der = ssl.PEM_cert_to_DER_cert(pem)
    data["spec"]["vsphere"]["thumbprint"] = ":".join(f"{b:02X}" for b in hashlib.sha1(der).digest())
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json", *SPACE)
    assert r.code == 0, r.text
    assert "TLS verified" in json.loads(r.out)["checks"][0]["message"]

    data["spec"]["vsphere"]["thumbprint"] = "00:" * 19 + "00"
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json")
    assert r.code == 3 and json.loads(r.out)["checks"][0]["status"] == "fail"


def test_control_planes_get_an_anti_affinity_rule_removed_on_destroy(sim_config, sim):
    path, data, write = sim_config
    data["spec"]["nodes"]["controlPlane"].update(count=3, memoryMiB=1024)
    data["spec"]["nodes"]["workers"][0].update(count=1, memoryMiB=1024)
    write()
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    cluster = next(c for c in sim.dc.hostFolder.childEntity if c.name == "DC0_C0")
    rules = {r.name: sorted(v.name for v in r.vm) for r in cluster.configurationEx.rule}
    assert rules["vcsim-control-plane-anti-affinity"] == ["vcsim-cp-1", "vcsim-cp-2", "vcsim-cp-3"]
    assert "vcsim-loadbalancer-anti-affinity" not in rules   # a single LB needs no rule
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    assert len([r for r in cluster.configurationEx.rule if r.name.startswith("vcsim-")]) == 1
    assert run_ccp("destroy", "--config", path, "--yes").code == 0
    assert not [r for r in cluster.configurationEx.rule if r.name.startswith("vcsim-")]


def test_template_with_a_snapshot_gives_linked_clones(sim_config, sim):
    from pyVim.task import WaitForTask

    path, _, _ = sim_config
    template = sim.vms()["DC0_C0_RP0_VM0"][0]
    WaitForTask(template.CreateSnapshot_Task(name="ccp-base", memory=False, quiesce=False))
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    vms = ours(sim)
    assert len(vms) == 4
    # vcsim does not model delta disks, so the clone spec's snapshot is what can be seen: ccp's report
    assert r.err.count("cloning (linked, from the template's snapshot)") == 4


def test_scale_workers_up_and_down_by_editing_the_config(sim_config, sim):
    """More workers: only the new VMs are created. Fewer: the plan names the VMs to destroy, and only
    those go (the cluster never had them as nodes here: no kubeconfig, so nodes/remove has nothing to drain)."""
    import json

    from tests.conftest import run_ccp
    from tests.sim.test_native import SPACE

    path, data, write = sim_config
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    ours = lambda: sorted(n for n in sim.vms() if n.startswith("vcsim-"))  # noqa: E731
    before = ours()
    assert "vcsim-default-2" in before and "vcsim-default-3" not in before
    moids = {n: sim.vms()[n][0]._moId for n in before}

    data["spec"]["nodes"]["workers"][0]["count"] = 3
    write(data)
    plan = json.loads(run_ccp("plan", "--config", path, "--output", "json").out)
    prov = next(p for p in plan["phases"] if p["phase"] == "provision")
    assert [(a["verb"], a["target"]) for a in prov["actions"]] == [("create", "VM vcsim-default-3")]
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    assert ours() == sorted(before + ["vcsim-default-3"])
    assert all(sim.vms()[n][0]._moId == moids[n] for n in before), "nothing else touched"

    data["spec"]["nodes"]["workers"][0]["count"] = 1
    write(data)
    plan = json.loads(run_ccp("plan", "--config", path, "--output", "json").out)
    prov = next(p for p in plan["phases"] if p["phase"] == "provision")
    assert [(a["verb"], a["target"]) for a in prov["actions"]] == [("destroy", "VM vcsim-default-2"),
                                                                    ("destroy", "VM vcsim-default-3")]
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    assert ours() == sorted(n for n in before if n != "vcsim-default-2")
    assert all(len(v) == 1 for v in sim.vms().values())
    again = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert again.code == 0 and "already done" in again.err


def test_more_control_planes_keep_every_vms_address_and_a_freed_one_is_reused(sim_config, sim):
    """1 -> 3 control planes on the simulator: the VMs that exist keep the addresses they report (the journal's
    record), the two new ones report the lowest free ones; back to 1, their addresses are free again once their
    VMs are gone, and a new worker takes the first of them."""
    path, data, write = sim_config

    def reported():
        state = path.parent / ".ccp" / "vcsim" / "journal.jsonl"
        done = [json.loads(x) for x in state.read_text().splitlines() if '"provision"' in x and '"done"' in x]
        return {n: rec["reported"] for n, rec in done[-1]["outputs"]["nodes"].items()}

    def shim_ip(name):   # what the simulator reports for the VM (the shim sets its guest IP from ccp's address)
        (vm,) = sim.vms()[name]
        return vm.guest.ipAddress

    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    first = reported()
    assert first == {"vcsim-lb-1": "10.20.0.20", "vcsim-cp-1": "10.20.0.21", "vcsim-default-1": "10.20.0.22",
                     "vcsim-default-2": "10.20.0.23"}

    data["spec"]["nodes"]["controlPlane"]["count"] = 3
    write(data)
    plan = json.loads(run_ccp("plan", "--config", path, "--output", "json").out)
    prov = next(p for p in plan["phases"] if p["phase"] == "provision")
    assert [(a["verb"], a["target"], a["reason"].rsplit(", ", 1)[-1]) for a in prov["actions"]] == [
        ("create", "VM vcsim-cp-2", "10.20.0.24"), ("create", "VM vcsim-cp-3", "10.20.0.25")]
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    grown = reported()
    assert {n: grown[n] for n in first} == first, "no VM that existed moved"
    assert (grown["vcsim-cp-2"], grown["vcsim-cp-3"]) == ("10.20.0.24", "10.20.0.25")
    assert all(shim_ip(n) == a for n, a in grown.items())

    data["spec"]["nodes"]["controlPlane"]["count"] = 1
    write(data)
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    assert reported() == first and "vcsim-cp-2" not in sim.vms()
    data["spec"]["nodes"]["workers"][0]["count"] = 3
    write(data)
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    assert reported() == {**first, "vcsim-default-3": "10.20.0.24"} and shim_ip("vcsim-default-3") == "10.20.0.24"
