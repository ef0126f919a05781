"""security/apply on the recording SSH fake nodes (ApiServersFake models each API server's manifest, what it read
at its last start, kubeadm-config and what etcd stores): a changed spec.security on a cluster that runs is shown
by `ccp plan` and applied by `ccp apply` one control plane at a time — files, the static pod's flags, a restart
— then kubeadm-config; turning encryption off rewrites every Secret in plain text before the flag goes; a run
cut short goes on from where it stopped; a rerun has nothing to do."""

from __future__ import annotations

import json

import yaml

from tests.conftest import run_ccp
from tests.ssh.test_security_files import CPS, settled

AUDIT, ADMISSION, ENCRYPTION = ("/etc/kubernetes/ccp/audit-policy.yaml", "/etc/kubernetes/ccp/admission-config.yaml",
                                "/etc/kubernetes/ccp/encryption-config.yaml")


def installed(cluster, tmp_path, **security):
    fc, cfg = cluster()
    if security:
        edit(cfg, **security)
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    return fc, cfg, tmp_path / ".ccp" / "fk"


def edit(cfg, **security) -> None:
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["security"] = security
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def planned(cfg) -> list[tuple[str, str, str]]:
    phases = json.loads(run_ccp("plan", "--config", cfg, "--output", "json").out)["phases"]
    return [(a["verb"], a["target"], a["reason"]) for a in next(p for p in phases if p["phase"] == "security/apply")["actions"]]


def flags(fc, cp: str) -> dict[str, str]:
    command = fc.apis.manifests[cp]["spec"]["containers"][0]["command"]
    return dict(a[2:].split("=", 1) for a in command[1:])


def kubeadm_args(fc) -> dict[str, str]:
    return {a["name"]: a["value"] for a in fc.apis.cluster_config["apiServer"].get("extraArgs") or []}


def test_audit_limits_and_pod_security_levels_change_one_control_plane_at_a_time(cluster, tmp_path, monkeypatch):
    fc, cfg, state = installed(cluster, tmp_path)
    before = {cp: fc.files[cp][ADMISSION] for cp in CPS}
    edit(cfg, audit={"maxSizeMB": 200}, podSecurity={"enforce": "restricted"})
    plan = planned(cfg)
    assert [(v, t) for v, t, _ in plan] == [("update", f"kube-apiserver on {cp}") for cp in CPS] + [
        ("update", "the kubeadm-config ConfigMap")]
    assert "Pod Security admission configuration changed" in plan[0][2] and "audit-log-maxsize 100 -> 200" in plan[0][2]

    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.apis.restarts == list(CPS) and fc.apis.violations == []
    rendered = (state / "rendered" / "security" / "admission-config.yaml").read_text()
    for cp in CPS:
        assert flags(fc, cp)["audit-log-maxsize"] == "200" and fc.files[cp][ADMISSION] == rendered != before[cp]
        assert "enforce: \"restricted\"" in rendered or "enforce: restricted" in rendered
        assert flags(fc, cp)["advertise-address"] == fc.addresses[cp], "every other flag stays"
    # each restart came after its files and before the next control plane was touched
    restarts = [x for x in fc.records if x.script.startswith("set -e; mkdir -p /etc/kubernetes/ccp-apiserver-restart")]
    assert [x.node for x in restarts] == list(CPS) and all(a.end <= b.start for a, b in zip(restarts, restarts[1:]))
    assert all(x.locked for x in restarts), "each restart holds the control plane's lock"
    assert kubeadm_args(fc)["audit-log-maxsize"] == "200" and fc.apis.kubeadm_config_updates == 1
    assert not fc.apis.rewrites, "encryption did not change: nothing rewritten"

    assert planned(cfg) == []
    assert settled(cfg, monkeypatch) == 0 and fc.apis.restarts == list(CPS), "a rerun has nothing to do"


def test_audit_off_removes_its_flags_volume_and_file(cluster, tmp_path):
    fc, cfg, _ = installed(cluster, tmp_path)
    edit(cfg, audit={"enabled": False})
    assert run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    for cp in CPS:
        assert not [f for f in flags(fc, cp) if f.startswith("audit-")] and AUDIT not in fc.files[cp]
        names = {v["name"] for v in fc.apis.manifests[cp]["spec"]["volumes"]}
        assert "audit-log" not in names and "ccp-security" in names
    assert not [a for a in kubeadm_args(fc) if a.startswith("audit-")]
    assert fc.apis.violations == [] and fc.apis.restarts == list(CPS)


def test_encryption_off_rewrites_every_secret_in_plain_text_before_the_flag_goes(cluster, tmp_path):
    fc, cfg, state = installed(cluster, tmp_path)
    key = (state / "secrets" / "encryption-key").read_text().strip()
    edit(cfg, encryption={"enabled": False})
    plan = planned(cfg)
    assert [v for v, _, _ in plan] == ["update"] * 3 + ["rewrite"] + ["update"] * 4, plan
    assert "written with identity (reads secretbox ccp-1 too)" in plan[0][2]
    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.apis.restarts == list(CPS) * 2 and fc.apis.violations == []
    assert set(fc.apis.prefixes().values()) == {""}, "every Secret in plain text again"
    for cp in CPS:
        assert "encryption-provider-config" not in flags(fc, cp) and ENCRYPTION not in fc.files[cp]
    assert "encryption-provider-config" not in kubeadm_args(fc)
    assert (state / "secrets" / "encryption-key").read_text().strip() == key, "kept for when it is turned on again"


def test_a_change_cut_short_goes_on_from_where_it_stopped(cluster, tmp_path):
    fc, cfg, state = installed(cluster, tmp_path, encryption={"enabled": False})
    edit(cfg)                                               # encryption on: readers, writers, rewrite
    fc.apis.restart_fail = {"fk-cp-2"}
    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 5 and "fk-cp-2: kube-apiserver could not be restarted" in r.err, r.text
    assert "ccp install --config" in r.err and "--resume" in r.err
    assert fc.apis.restarts == ["fk-cp-1"] and fc.apis.violations == []

    refused = run_ccp("secrets", "rotate-key", "--config", cfg, "--yes")
    assert refused.code == 2 and "left a change of spec.security unfinished" in refused.err, refused.text
    plan = planned(cfg)
    assert "finishing the change an earlier run started" in plan[0][2]
    assert [t for _, t, _ in plan][:5] == [f"kube-apiserver on {cp}" for cp in ("fk-cp-2", "fk-cp-3", *CPS)]

    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.apis.restarts == ["fk-cp-1", "fk-cp-2", "fk-cp-3", *CPS], "cp-1's finished pass is not redone"
    assert fc.apis.violations == [] and set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-1:"}
    assert planned(cfg) == []
