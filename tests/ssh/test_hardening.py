"""ccp diagnose's hardening section over SSH against the recording nodes (each answers the node script as a node
kubeadm and ccp set up would, tests/unit/test_hardening.py's output): every Kubernetes node is read, the load
balancers not; a fresh cluster passes; a world-readable key planted on a control plane is named, with
the node, the path and what to do, and the exit is 9."""

from __future__ import annotations

import json

from tests.conftest import run_ccp


def test_the_hardening_section_passes_then_names_a_planted_world_readable_key(cluster, tmp_path):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    (tmp_path / ".ccp" / "fk" / "kubeconfig").unlink()   # the fake admin.conf holds no real certificate

    r = run_ccp("diagnose", "--config", cfg, "--only", "hardening", "--output", "json")
    assert r.code == 0, r.text
    found = json.loads(r.out)["findings"]
    assert {f["section"] for f in found} == {"hardening"}
    assert [(f["check"], f["severity"]) for f in found if f["severity"] != "ok"] == [("anonymous-auth", "warn")], found
    asked = {rec.node for rec in fc.records if rec.script.startswith("for f in /etc/kubernetes/manifests/")}
    assert asked == set(fc.names) - {"fk-lb-1"}

    fc.planted_modes["fk-cp-2"] = {"/etc/kubernetes/pki/ccp-planted.key": "644 root"}
    r = run_ccp("diagnose", "--config", cfg, "--only", "hardening")
    assert r.code == 9, r.text
    assert "/etc/kubernetes/pki/ccp-planted.key" in r.out and "fk-cp-2: /etc/kubernetes/pki/ccp-planted.key is 644" in r.out
    assert "chmod 600 and chown root:root" in r.out and "hardening/file-modes" in r.err

    fc.planted_modes.clear()
    fc.sudo_refused.add("fk-worker-3")
    r = run_ccp("diagnose", "--config", cfg, "--only", "hardening", "--output", "json")
    unread = [f for f in json.loads(r.out)["findings"] if f["check"] == "read"]
    assert r.code == 0 and [(f["severity"], f["what"]) for f in unread] == [("warn", "fk-worker-3: its configuration was not read")]


def test_without_a_config_the_hardening_checks_say_they_did_not_run(tmp_path):
    from tests.unit.test_diagnose import DiagnosePortFake, Snapshot
    from ccp.diagnose import runner

    rep = runner.run(kube=DiagnosePortFake(Snapshot()), only={"hardening"})
    (f,) = rep.findings
    assert (f.section, f.check, f.severity) == ("hardening", "collect", "warn") and "--config" in f.remediation
