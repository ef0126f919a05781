"""ccp diagnose's vSphere section against vcsim: a missing VM, a powered-off one, a snapshot and an
orphan carrying the cluster's mark are each found and named; exit 9."""

from __future__ import annotations

import json

from tests.conftest import run_ccp
from tests.sim.test_native import SPACE


def test_diagnose_finds_what_happened_to_the_vms(sim_config, sim):
    from pyVim.task import WaitForTask

    path, data, write = sim_config
    assert run_ccp("install", "--config", path, "--yes", "--until", "provision", *SPACE).code == 0
    r = run_ccp("diagnose", "--config", path, "--only", "vsphere", "--output", "json")
    assert r.code == 0, r.text
    assert {f["severity"] for f in json.loads(r.out)["findings"]} <= {"ok", "warn"}

    vms = sim.vms()
    WaitForTask(vms["vcsim-default-1"][0].PowerOffVM_Task())
    WaitForTask(vms["vcsim-default-2"][0].PowerOffVM_Task())
    WaitForTask(vms["vcsim-default-2"][0].Destroy_Task())
    WaitForTask(vms["vcsim-cp-1"][0].CreateSnapshot_Task(name="before-upgrade", memory=False, quiesce=False))
    r = run_ccp("diagnose", "--config", path, "--only", "vsphere", "--output", "json")
    assert r.code == 9, r.text
    found = {f["check"]: f for f in json.loads(r.out)["findings"]}
    assert found["vms-present"]["severity"] == "fail" and found["vms-present"]["evidence"] == ["vcsim-default-2"]
    assert found["vms-powered-on"]["severity"] == "fail" and found["vms-powered-on"]["evidence"] == ["vcsim-default-1"]
    assert found["snapshots"]["evidence"] == ["vcsim-cp-1"]
    assert "ccp install" in found["vms-present"]["remediation"]

    data["spec"]["nodes"]["workers"][0]["count"] = 0          # the remaining worker is now an orphan
    write(data)
    r = run_ccp("diagnose", "--config", path, "--only", "vsphere", "--output", "json")
    found = {f["check"]: f for f in json.loads(r.out)["findings"]}
    assert found["orphan-vms"]["evidence"] == ["vcsim-default-1"]
