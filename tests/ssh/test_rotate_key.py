"""`ccp secrets rotate-key` against the recording SSH fake nodes (FakeCluster, whose ApiServersFake models what each
API server reads and what etcd stores, a fake for logic only): the documented order, one control plane at a time,
with no moment at which an API server that is up cannot read a stored object and no moment at which a control
plane holds a key the state directory does not; every Secret ends stored with the new key and the old one is gone
from the nodes and from <state>/secrets. A failure, a Ctrl-C (SIGINT) and a SIGKILL of a ccp process of its own
resume with --resume, redoing no control plane's finished restart; `ccp apply` meanwhile refuses to start."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_ccp

ENCRYPTION_CONFIG = "/etc/kubernetes/ccp/encryption-config.yaml"
CPS = ("fk-cp-1", "fk-cp-2", "fk-cp-3")


def installed(cluster, tmp_path):
    fc, cfg = cluster()
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    return fc, cfg, tmp_path / ".ccp" / "fk"


def node_keys(fc, cp: str) -> dict[str, str]:
    doc = yaml.safe_load(fc.files[cp][ENCRYPTION_CONFIG])
    return {k["name"]: k["secret"] for p in doc["resources"][0]["providers"] for conf in p.values() for k in (conf or {}).get("keys", [])}


def state_keys(state: Path) -> set[str]:
    """Every key the state directory holds, wherever in <state>/secrets."""
    return {p.read_text().strip() for p in (state / "secrets").rglob("*") if p.is_file()}


def watch_keys(fc, state: Path) -> list[str]:
    """After every restart: each key a control plane holds is in the state directory. -> the misses, as they come."""
    missed: list[str] = []

    def check(_node):
        held = state_keys(state)
        missed.extend(f"{cp} holds {name}, the state directory does not" for cp in CPS
                      for name, key in node_keys(fc, cp).items() if key not in held)
    fc.apis.on_restart = check
    return missed


def events(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines()]


def done(state: Path, phase: str) -> bool:
    return any(e.get("phase") == phase and e["event"] == "done" for e in events(state))


def test_the_rotation_in_order_one_control_plane_at_a_time_and_nothing_unreadable(cluster, tmp_path):
    fc, cfg, state = installed(cluster, tmp_path)
    old = (state / "secrets" / "encryption-key").read_text().strip()
    assert set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-1:"}
    missed = watch_keys(fc, state)

    plan = run_ccp("secrets", "rotate-key", "--config", cfg)           # no terminal, no --yes: the plan, then refused
    assert plan.code == 2 and "needs confirmation" in plan.err and fc.apis.restarts == []
    for step in ("key", "add", "switch", "rewrite", "drop"):
        assert f"rotate-key/ccp-2/{step}" in plan.out
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--yes")
    assert r.code == 0, r.text
    assert "rotated" in r.out and "ccp-1 is gone" in r.out and "phase timings" in r.err

    assert fc.apis.restarts == list(CPS) * 3, "add, switch, drop: each control plane in turn"
    assert fc.apis.violations == [] and missed == []
    prefixes = fc.apis.prefixes()
    assert set(prefixes.values()) == {"k8s:enc:secretbox:v1:ccp-2:"} and len(prefixes) > 3, "every Secret rewritten"
    assert fc.apis.rewrites == [("fk-cp-1", ["secrets"])]
    new = (state / "secrets" / "encryption-key").read_text().strip()
    assert new != old and state_keys(state) == {new}, "the old key is gone from <state>/secrets"
    assert sorted(p.name for p in (state / "secrets" / "encryption-keys").iterdir()) == ["ccp-2"]
    for cp in CPS:
        assert node_keys(fc, cp) == {"ccp-2": new} and fc.modes[cp][ENCRYPTION_CONFIG] == "600"
    for step in ("key", "add", "switch", "rewrite", "drop"):
        assert done(state, f"rotate-key/ccp-2/{step}")
    assert not [x for x in fc.records if old in x.script or new in x.script]

    assert run_ccp("secrets", "rotate-key", "--config", cfg, "--resume").code == 2, "nothing left to resume"
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--yes")            # the next one: a key never used
    assert r.code == 0 and "ccp-3" in r.out and fc.apis.violations == [], r.text
    assert set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-3:"}


def _ccp(tmp_path, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "platform")])}
    return subprocess.Popen([sys.executable, "-m", "ccp", *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _when(child, predicate, what: str, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        assert child.poll() is None and time.monotonic() < end, f"{what}: {child.communicate()}"
        time.sleep(0.05)


def test_sigint_then_sigkill_then_resume_redo_nothing_done(cluster, tmp_path):
    fc, cfg, state = installed(cluster, tmp_path)
    missed = watch_keys(fc, state)
    fc.apis.restart_delay = {"fk-cp-2": 2.0}

    child = _ccp(tmp_path, "secrets", "rotate-key", "--config", cfg, "--yes")     # Ctrl-C while cp-2 restarts (add)
    _when(child, lambda: (state / "journal.jsonl").exists() and done(state, "rotate-key/ccp-2/add/fk-cp-1"), "add on cp-1")
    time.sleep(0.5)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, out + err
    assert "interrupted in phase rotate-key/ccp-2/add" in err and "ccp secrets rotate-key --config" in err and "--resume" in err
    assert re.search(r"rotate-key/ccp-2/add[\s│]+cluster[\s│]+interrupted", err), err

    r = run_ccp("plan", "--config", cfg, "--output", "json")                    # ccp apply would refuse meanwhile
    apply = next(p for p in json.loads(r.out)["phases"] if p["phase"] == "security/apply")
    assert "a key rotation to ccp-2 did not finish" in apply["reason"]

    child = _ccp(tmp_path, "secrets", "rotate-key", "--config", cfg, "--resume")   # SIGKILL while cp-2 restarts (switch)
    _when(child, lambda: done(state, "rotate-key/ccp-2/switch/fk-cp-1"), "switch on cp-1")
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=60)
    assert state_keys(state) >= set(node_keys(fc, "fk-cp-1").values()) | set(node_keys(fc, "fk-cp-3").values())

    fc.apis.restart_delay = {}
    before = list(fc.apis.restarts)
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--resume")
    assert r.code == 0, r.text
    assert "continuing the rotation to key ccp-2" in r.err
    for phase in ("key", "add"):
        assert re.search(rf"rotate-key/ccp-2/{phase}\s+already done", r.err), r.err
    # only what was not journaled as done: cp-2's cut-short restart of the switch again, cp-3's, then the drop
    assert fc.apis.restarts[len(before):] == ["fk-cp-2", "fk-cp-3", *CPS]
    assert before.count("fk-cp-1") == 2 and before.count("fk-cp-3") == 1, "add on all, switch on cp-1, each once"
    assert fc.apis.violations == [] and missed == []
    assert set(fc.apis.prefixes().values()) == {"k8s:enc:secretbox:v1:ccp-2:"}
    assert [p.name for p in (state / "secrets" / "encryption-keys").iterdir()] == ["ccp-2"]


def test_a_failed_restart_stops_there_and_the_resume_goes_on_from_it(cluster, tmp_path):
    fc, cfg, state = installed(cluster, tmp_path)
    fc.apis.restart_fail = {"fk-cp-3"}
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--yes")
    assert r.code == 5 and "fk-cp-3: kube-apiserver could not be restarted" in r.err, r.text
    assert "continue with `ccp secrets rotate-key --config" in r.err and "Traceback" not in r.text
    assert fc.apis.restarts == ["fk-cp-1", "fk-cp-2"], "cp-3's restart failed: the kubelet did not stop it"
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--resume")
    assert r.code == 0, r.text
    assert fc.apis.restarts[2:] == ["fk-cp-3", *CPS, *CPS] and fc.apis.violations == []


def test_refused_when_the_cluster_encrypts_nothing(cluster, tmp_path):
    fc, cfg = cluster()
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["security"] = {"encryption": {"enabled": False}}
    cfg.write_text(yaml.safe_dump(data))
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    r = run_ccp("secrets", "rotate-key", "--config", cfg, "--yes")
    assert r.code == 2 and "there is no key to rotate" in r.err and "to fix" in r.err and fc.apis.restarts == [], r.text
    assert len(r.err.strip().splitlines()) <= 3, r.err
