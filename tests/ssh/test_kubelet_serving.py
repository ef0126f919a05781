"""kubelets/serving-certificates against the recording SSH nodes: each kubelet's request (real PEM requests,
tests.unit.test_kubelet_serving.request) approved once checked, a rerun with nothing to do, a kubelet that asks
for another node's address named and refused with the install stopped, and nothing at all with kubeletServing
off. The rules themselves: tests/unit/test_kubelet_serving.py."""

from __future__ import annotations

import json

import yaml

from ccp.phases import kubelet_serving as phase
from tests.conftest import run_ccp

UNTIL = ("--until", "kubelets/serving-certificates")


def test_every_kubelets_request_is_approved_once_then_a_rerun_has_nothing_to_do(cluster):
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeadm/init").code == 0
    plan = json.loads(run_ccp("plan", "--config", cfg, "--output", "json").out)
    actions = next(p for p in plan["phases"] if p["phase"] == "kubelets/serving-certificates")["actions"]
    workers = fc.names_by_prefix("worker")
    assert {a["target"].split()[-1]: a["reason"] for a in actions if a["target"].split()[-1] in workers} == \
        {w: "once it has joined" for w in workers}, actions   # not "turn on": they have no kubelet yet
    r = run_ccp("install", "--config", cfg, "--yes", *UNTIL)
    assert r.code == 0, (r.text, fc.unknown)
    nodes = fc.names_by_prefix("cp") + fc.names_by_prefix("worker")
    assert fc.serving == set(nodes) and sorted(fc.csr_approved) == sorted(f"csr-{n}" for n in nodes)
    assert all(rec.node == fc.names_by_prefix("cp")[0] for rec in fc.records if "certificate approve" in rec.script)
    r = run_ccp("install", "--config", cfg, "--yes", *UNTIL)
    assert r.code == 0 and len(fc.csr_approved) == len(nodes), r.text
    assert "kubelets/serving-certificates" in r.err and "already done" in r.err


def test_a_kubelet_asking_for_another_nodes_address_is_refused_and_named(cluster, monkeypatch):
    fc, cfg = cluster()
    workers = fc.names_by_prefix("worker")
    other = fc.addresses[fc.names_by_prefix("cp")[0]]
    fc.serving_ask = {workers[0]: {"ips": [fc.addresses[workers[0]], other]}}
    monkeypatch.setattr(phase, "WAIT", 3)
    r = run_ccp("install", "--config", cfg, "--yes", *UNTIL)
    assert r.code != 0 and f"no serving certificate on {workers[0]} after 3s" in r.err, r.text
    assert f"it asks for {other}" in r.text and f"csr-{workers[0]}" not in fc.csr_approved
    assert fc.serving >= set(workers[1:]), "the others are approved all the same"


def test_nothing_is_asked_of_the_kubelets_with_kubelet_serving_off(cluster):
    fc, cfg = cluster()
    data = yaml.safe_load(cfg.read_text())
    data["spec"].setdefault("security", {}).setdefault("certificates", {})["kubeletServing"] = False
    cfg.write_text(yaml.safe_dump(data))
    r = run_ccp("install", "--config", cfg, "--yes", *UNTIL)
    assert r.code == 0 and fc.csr_approved == [], r.text
    assert not [rec for rec in fc.records if "csr" in rec.script]
    assert "serverTLSBootstrap: false" in fc.files[fc.names_by_prefix("cp")[0]]["/etc/ccp/kubeadm/init.yaml"]


def test_a_kubelet_installed_without_it_is_turned_on_by_apply(cluster):
    """A cluster from before (or installed with kubeletServing off, then on): the kubelets' config and kubeadm's
    kubelet-config ConfigMap get serverTLSBootstrap, the kubelets restart, their requests are approved."""
    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", *UNTIL).code == 0
    worker = fc.names_by_prefix("worker")[0]
    fc.kubelet_off, fc.kubelet_cm = {worker}, {"serverTLSBootstrap": False}
    fc.serving.discard(worker)
    r = run_ccp("install", "--config", cfg, "--yes", *UNTIL)
    assert r.code == 0, (r.text, fc.unknown)
    assert f"turn on the serving certificate of {worker}" in r.text, r.text
    assert fc.kubelet_off == set() and fc.kubelet_cm["serverTLSBootstrap"] is True and worker in fc.serving
    assert yaml.safe_load(fc.files[worker]["/var/lib/kubelet/config.yaml"])["kind"] == "KubeletConfiguration"
    restarts = [rec.node for rec in fc.records if rec.script == "systemctl restart kubelet"]
    assert restarts == [worker], restarts
