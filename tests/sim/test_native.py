"""The native provisioner and preflight against vcsim: create, rerun (no new VM), SIGKILL in the
middle then rerun (exactly the expected set), destroy (only ours), and preflight's named checks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import run_ccp

pytestmark = pytest.mark.sim
SIM_OWN = {"DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"}
# vcsim's datastore reports the free space of this machine's own disk, which differs between
# machines; tests about something else accept that check's verdict.
SPACE = ("--ignore-preflight", "datastore-space")


def ours(sim, cluster="vcsim") -> dict[str, list]:
    return {n: vms for n, vms in sim.vms().items() if n.startswith(f"{cluster}-")}


def test_preflight_passes_on_the_simulator(sim_config):
    path, _, _ = sim_config
    r = run_ccp("preflight", "--config", path, "--output", "json", *SPACE)
    assert r.code == 0, r.text
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks.pop("template-guestinfo")["status"] == "warn"  # vcsim's VMs say nothing about cloud-init
    space = checks.pop("datastore-space")
    free, need = (int(x) for x in re.findall(r"(\d+) GiB", space["message"]))
    assert space["status"] == ("pass" if free >= need else "ignored")
    assert {c["status"] for c in checks.values()} == {"pass"}, checks


@pytest.mark.parametrize("edit,check,words", [
    (lambda d: d["spec"]["vsphere"].update(datastore="nope"), "datastore", "LocalDS_0"),
    (lambda d: d["spec"]["vsphere"].update(network="nope"), "network", "VM Network"),
    (lambda d: d["spec"]["vsphere"].update(template="nope"), "template", "template 'nope' not found"),
    (lambda d: d["spec"]["vsphere"].update(folder="nope"), "folder", "ccp-vcsim"),
    (lambda d: d["spec"]["vsphere"].update(cluster="nope"), "cluster", "DC0_C0"),
    (lambda d: d["spec"]["nodes"]["workers"][0].update(diskGiB=500000), "datastore-space", "GiB needed"),
])
def test_each_preflight_failure_is_named(sim_config, edit, check, words):
    path, data, write = sim_config
    edit(data)
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json")
    assert r.code == 3
    results = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert results[check]["status"] == "fail", results[check]
    assert words in results[check]["message"]
    assert results[check]["remediation"]
    assert "--ignore-preflight" in r.err


def test_preflight_space_counts_only_new_vms_memory_overcommit_warns_and_ignores_repeat(sim_config):
    path, data, write = sim_config
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    r = run_ccp("preflight", "--config", path, "--output", "json")
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert "0 GiB needed for 0 new VMs" in checks["datastore-space"]["message"]
    assert "4 VMs of the cluster exist already" in checks["datastore-space"]["message"]
    assert checks["datastore-space"]["status"] == "pass"

    data["spec"]["nodes"]["workers"][0].update(memoryMiB=10**6)     # far beyond vcsim's 12 GiB
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json",
                "--ignore-preflight", "template-guestinfo", "--ignore-preflight", "address-conflicts,datastore-space")
    checks = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert checks["cluster-capacity"]["status"] == "warn" and "overcommitted" in checks["cluster-capacity"]["message"]
    assert checks["template-guestinfo"]["status"] == "ignored"       # both repeats of the option count
    assert r.code == 0, r.text


def test_missing_folder_says_how_to_create_it(sim_config):
    path, data, write = sim_config
    data["spec"]["vsphere"]["folder"] = "not-there"
    write()
    r = run_ccp("preflight", "--config", path, "--output", "json")
    folder = {c["name"]: c for c in json.loads(r.out)["checks"]}["folder"]
    assert folder["status"] == "fail" and "govc folder.create /DC0/vm/not-there" in folder["remediation"]


def test_stranger_vm_with_our_name_fails_preflight_and_install(sim_config, sim):
    path, _, _ = sim_config
    sim.clone_stranger("vcsim-cp-1")
    r = run_ccp("preflight", "--config", path, "--output", "json")
    results = {c["name"]: c for c in json.loads(r.out)["checks"]}
    assert r.code == 3 and results["name-conflicts"]["status"] == "fail"
    assert "vcsim-cp-1" in results["name-conflicts"]["message"]
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 3
    assert len(ours(sim)) == 1, "nothing created next to a stranger"
    assert sim.owner(sim.vms()["vcsim-cp-1"][0]) is None, "the stranger was not adopted"


def test_provision_rerun_and_destroy(sim_config, sim):
    path, data, _ = sim_config
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    vms = ours(sim)
    assert sorted(vms) == ["vcsim-cp-1", "vcsim-default-1", "vcsim-default-2", "vcsim-lb-1"]
    for name, (vm,) in vms.items():
        assert sim.owner(vm) == "vcsim"
        assert vm.runtime.powerState == "poweredOn"
        lb = "-lb-" in name
        assert (vm.config.hardware.numCPU, vm.config.hardware.memoryMB) == ((1, 1024) if lb else (2, 2048))
        extra = {o.key: o.value for o in vm.config.extraConfig}
        assert extra["guestinfo.userdata.encoding"] == "base64" and extra["disk.EnableUUID"] == "TRUE"
    assert vms["vcsim-cp-1"][0].guest.ipAddress == "10.20.0.21"
    assert "machines" in r.out and "10.20.0.21" in r.out

    moids = {n: v[0]._moId for n, v in vms.items()}
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0 and "provision" in r.err and "already done" in r.err
    assert {n: v[0]._moId for n, v in ours(sim).items()} == moids

    # what day 2 journaled on these machines (an upgrade's nodes, a restore) goes with them: a cluster made
    # again in this state directory must not find it done
    from ccp.engine.journal import Journal

    journal = Journal(path.parent / ".ccp" / "vcsim")
    day2 = ["upgrade/1.99.0/node/vcsim-cp-1", "upgrade/1.99.0/control-plane/vcsim-cp-1", "restore/etcd"]
    for name in day2:
        journal.append("done", phase=name, outputs={"planted": True})
    r = run_ccp("destroy", "--config", path, "--yes")
    assert r.code == 0, r.text
    assert ours(sim) == {}
    assert SIM_OWN <= set(sim.vms()), "the simulator's own VMs are untouched"
    records = journal.records()
    assert not set(day2) & set(records) and "provision" not in records, sorted(records)
    assert "config/validate" in records and "destroy/machines" in records, sorted(records)


def test_changed_size_is_reconfigured_not_recreated(sim_config, sim):
    path, data, write = sim_config
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    before = {n: v[0]._moId for n, v in ours(sim).items()}
    data["spec"]["nodes"]["workers"][0]["memoryMiB"] = 3072
    write()
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    after = ours(sim)
    assert {n: v[0]._moId for n, v in after.items()} == before
    assert after["vcsim-default-1"][0].config.hardware.memoryMB == 3072


def test_sigkill_during_provisioning_then_rerun(sim_config, sim, tmp_path):
    path, data, write = sim_config
    data["spec"]["nodes"]["workers"][0].update(count=16, memoryMiB=512)   # fits vcsim's 12 GiB cluster
    data["spec"]["nodes"]["network"]["addresses"] = "10.20.0.20-10.20.0.90"
    data["spec"]["vsphere"]["parallelism"] = 2
    write()
    env = {**os.environ, "CCP_VCSIM_SHIM": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ccp", "install", "--config", str(path), "--yes", "--until", "provision", *SPACE],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(ours(sim)) < 4:
        assert time.monotonic() < deadline and proc.poll() is None, "provisioning did not start or ended too soon"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    partial = len(ours(sim))
    assert 4 <= partial < 18

    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 0, r.text
    assert "resuming" in r.err
    vms = ours(sim)
    expected = {"vcsim-cp-1", "vcsim-lb-1"} | {f"vcsim-default-{i}" for i in range(1, 17)}
    assert set(vms) == expected
    assert all(len(v) == 1 for v in vms.values()), "no duplicates"
    assert all(v[0].runtime.powerState == "poweredOn" for v in vms.values())


def test_planted_password_never_leaks_through_vsphere_paths(sim_config, sim, tmp_path, monkeypatch):
    path, _, _ = sim_config
    planted = "Sim-Planted-Pw-77x"
    monkeypatch.setenv("VSPHERE_PASSWORD", planted)
    texts = []
    for args in (["preflight", "--config", path, *SPACE], ["install", "--config", path, "--yes", "--until", "provision", *SPACE],
                 ["--debug", "destroy", "--config", path, "--yes"]):
        r = run_ccp(*args)
        assert r.code == 0, r.text
        texts.append(r.text)
    assert all(planted not in t for t in texts)
    for p in (tmp_path / ".ccp").rglob("*"):
        assert not p.is_file() or planted.encode() not in p.read_bytes(), p


def test_terraform_path_without_a_provider_says_what_to_do(sim_config, tmp_path):
    path, data, write = sim_config
    data["spec"]["provisioner"] = "terraform"
    write()
    r = run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE)
    assert r.code == 4, r.text
    assert "providerMirror" in r.err and "Traceback" not in r.text
    assert "main.tf" in r.err or "provider" in r.err
