"""spec.security on the FakeCluster's control planes: the encryption configuration, audit policy and admission
configuration reach every control plane (0600, identical) before kubeadm init or join starts its API server
(the fake fails init and control-plane joins whose kube-apiserver flags name a file not there), never a
worker; the plan says so; a control plane joining later gets the running cluster's own key, even when the
state directory lost it (and gets it back)."""

from __future__ import annotations

import base64
import json

import yaml

from tests.conftest import run_ccp

CCP_DIR = "/etc/kubernetes/ccp"
FILES = (f"{CCP_DIR}/encryption-config.yaml", f"{CCP_DIR}/audit-policy.yaml", f"{CCP_DIR}/admission-config.yaml")
CPS = ("fk-cp-1", "fk-cp-2", "fk-cp-3")


def secret_of(text: str) -> str:
    return yaml.safe_load(text)["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"]


def test_every_control_plane_gets_the_same_files_before_kubeadm(cluster, tmp_path):
    fc, cfg = cluster()
    plan = json.loads(run_ccp("plan", "--config", cfg, "--output", "json").out)
    phases = {p["phase"]: p["actions"] for p in plan["phases"]}
    init = [(a["verb"], a["target"]) for a in phases["kubeadm/init"]]
    assert init[:2] == [("generate", "the cluster's encryption key"),
                        ("upload", "the encryption configuration, the audit policy, the Pod Security admission "
                                   "configuration to fk-cp-1")]
    assert ("write", "3 security files") in [(a["verb"], a["target"]) for a in phases["render"]]

    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.unknown == []
    state = tmp_path / ".ccp" / "fk"
    key_file = state / "secrets" / "encryption-key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and key_file.parent.stat().st_mode & 0o777 == 0o700
    key = key_file.read_text().strip()
    assert len(base64.b64decode(key)) == 32

    for cp in CPS:
        for path in FILES:
            assert fc.files[cp][path] == fc.files["fk-cp-1"][path], f"{cp}: {path} differs"
            assert fc.modes[cp][path] == "600"
        upload = next(rec for rec in fc.of(cp) if f"{CCP_DIR}/encryption-config.yaml" in rec.script)
        kubeadm = next(rec for rec in fc.of(cp) if "kubeadm init --config" in rec.script or "kubeadm join" in rec.script)
        assert upload.end <= kubeadm.start
    assert secret_of(fc.files["fk-cp-1"][FILES[0]]) == key
    assert fc.files["fk-cp-1"][FILES[1]] == (state / "rendered" / "security" / "audit-policy.yaml").read_text()
    for worker in ("fk-worker-1", "fk-worker-2", "fk-worker-3"):
        assert not [p for p in fc.files[worker] if p.startswith(CCP_DIR)], "a worker runs no API server"
    assert fc.apiserver_files == set(FILES)

    before = len(fc.records)   # a rerun uploads nothing, restarts nothing and makes no new key (security/apply reads)
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    assert not [x for x in fc.records[before:] if CCP_DIR in x.script and not x.script.startswith(("cat ", "sha256sum "))]
    assert fc.apis.restarts == [] and fc.apis.kubeadm_config_updates == 0
    assert key_file.read_text().strip() == key


def test_without_security_nothing_is_uploaded_and_no_key_is_made(cluster, tmp_path):
    fc, cfg = cluster()
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["security"] = {n: {"enabled": False} for n in ("encryption", "audit", "podSecurity")}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert not [p for node in fc.files.values() for p in node if p.startswith(CCP_DIR)]
    assert not (tmp_path / ".ccp" / "fk" / "secrets").exists() and fc.apiserver_files == set()


def test_a_later_control_plane_gets_the_running_clusters_key_even_when_the_state_lost_it(cluster, tmp_path):
    from tests.ssh.test_scale import shrink

    fc, cfg = cluster()
    full = cfg.read_text()
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    key_file = tmp_path / ".ccp" / "fk" / "secrets" / "encryption-key"
    cluster_key = key_file.read_text().strip()
    key_file.unlink()                     # the state directory lost it (or is a new one)

    cfg.write_text(full)                  # 1 -> 3 control planes
    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    for cp in ("fk-cp-2", "fk-cp-3"):
        assert fc.files[cp][FILES[0]] == fc.files["fk-cp-1"][FILES[0]]
    assert secret_of(fc.files["fk-cp-3"][FILES[0]]) == cluster_key
    assert key_file.read_text().strip() == cluster_key, "the state directory has the cluster's key back"
    assert key_file.stat().st_mode & 0o777 == 0o600
    joins = [x for x in fc.records[before:] if "kubeadm token create" in x.script or "kubeadm join" in x.script]
    reads = [x for x in fc.records[before:] if x.script == f"cat {FILES[0]}" and joins[0].end <= x.start <= joins[-1].end]
    assert {x.node for x in reads} == {"fk-cp-1"} and len(reads) == 1, "read once, from the control plane ccp acts through"
    assert cluster_key not in r.text


def quiet_cluster_api(monkeypatch) -> None:
    """The phases after kubeconfig that reach the Kubernetes API, which the fake nodes do not serve: nothing to do
    here, so `ccp apply` runs every phase over SSH and `ccp plan --detailed-exitcode` judges them."""
    from ccp.phases.addons import Addons
    from ccp.phases.cni import Cni
    from ccp.phases.validate import Validate

    for phase in (Cni, Addons, Validate):
        monkeypatch.setattr(phase, "plan", lambda self, ctx: [])
        monkeypatch.setattr(phase, "apply", lambda self, ctx, actions: {})


def settled(cfg, monkeypatch) -> int:
    """Every phase applied once (the API's as no-ops), then `ccp plan --detailed-exitcode`'s exit code."""
    quiet_cluster_api(monkeypatch)
    r = run_ccp("apply", "--config", cfg, "--yes")
    assert r.code == 0, r.text
    return run_ccp("plan", "--config", cfg, "--detailed-exitcode").code


def test_encryption_turned_on_after_init_reaches_every_control_plane_through_security_apply(cluster, tmp_path, monkeypatch):
    """A cluster installed without encryption, then encryption on (the default) and 1 -> 3 control planes in one
    `ccp apply`: the joining control planes get no key from the join (the running API servers have no encryption
    flag, so kubeadm-config gives them none); then security/apply turns it on everywhere — every API server reads
    the key before any writes with it (two restarts each, one control plane at a time), every Secret is rewritten
    encrypted, kubeadm-config gets the flag — with no moment at which an API server could not read an object."""
    from tests.ssh.test_scale import shrink

    fc, cfg = cluster()
    full = yaml.safe_load(cfg.read_text())
    data = dict(full, spec=dict(full["spec"], security={"encryption": {"enabled": False}}))
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    assert fc.apiserver_files == set(FILES[1:])
    assert set(fc.apis.prefixes().values()) == {""}, "stored in plain text"

    cfg.write_text(yaml.safe_dump(full, sort_keys=False))   # encryption on (the default), 1 -> 3 control planes
    plan = json.loads(run_ccp("plan", "--config", cfg, "--output", "json").out)
    apply = {p["phase"]: p["actions"] for p in plan["phases"]}["security/apply"]
    assert [(a["verb"], a["target"]) for a in apply] == [
        ("generate", "the cluster's encryption key"), *[("update", f"kube-apiserver on {cp}") for cp in CPS * 2],
        ("rewrite", "every secrets object"), ("update", "the kubeadm-config ConfigMap")], apply
    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    for cp in ("fk-cp-2", "fk-cp-3"):
        join = next(x for x in fc.of(cp) if "kubeadm join" in x.script)
        uploads = [x for x in fc.of(cp) if "mv -f /tmp/ccp-" in x.script and x.end <= join.start]
        assert not [x for x in uploads if FILES[0] in x.script], "the join brought no key"
    key = (tmp_path / ".ccp" / "fk" / "secrets" / "encryption-key").read_text().strip()
    for cp in CPS:
        assert secret_of(fc.files[cp][FILES[0]]) == key and fc.modes[cp][FILES[0]] == "600"
        assert fc.apis.loaded[cp]["secrets"][0] == ("secretbox", "ccp-1", key)
    assert fc.apis.restarts == list(CPS) * 2, "readers, then writers: one control plane at a time"
    assert fc.apis.violations == []
    assert set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-1:"}, "every Secret rewritten, encrypted"
    assert FILES[0] in fc.apiserver_files and fc.apis.kubeadm_config_updates == 1
    assert key not in r.text

    before = len(fc.apis.restarts)
    assert settled(cfg, monkeypatch) == 0, "a rerun has nothing to do"
    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0 and len(fc.apis.restarts) == before and fc.apis.kubeadm_config_updates == 1, r.text
