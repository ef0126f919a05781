"""Scale-down by editing cluster.yaml, against the recording SSH nodes (FakeCluster) and NodesPortFake
(cordon, drain and Node objects in memory, named a fake because it is one): the plan names what
leaves, workers go first, control planes one at a time with the etcd member removed after the drain
and before kubeadm reset and the Node delete; a Ctrl-C in the middle and a rerun converge with no
etcd member orphaned and nothing done twice; unhealthy etcd stops a member removal before it starts."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_ccp
from tests.ssh.fake_cluster import ADDR, MUTATING


class NodesPortFake:
    def __init__(self, fc):
        self.fc, self.events, self.interrupt_at = fc, [], None
        self.nodes = set(fc.members)      # the Node objects the API would list

    def node_names(self):
        return sorted(self.nodes)

    def cordon(self, node, unschedulable):
        if ("cordon", node) == self.interrupt_at:
            self.interrupt_at = None
            raise KeyboardInterrupt
        self.events.append(("cordon", node))

    def pods_on(self, node):
        return [{"metadata": {"name": f"app-{node}", "namespace": "shop", "ownerReferences": [{"kind": "ReplicaSet"}]},
                 "status": {"phase": "Running"}}]

    def pdbs(self):
        return []

    def evict(self, ns, name):
        self.events.append(("evict", name))

    def pod_exists(self, ns, name):
        return False

    def leaving_namespaces(self):
        return set()

    def delete_node(self, node):
        if ("delete", node) == self.interrupt_at:
            self.interrupt_at = None
            raise KeyboardInterrupt
        self.events.append(("delete", node))
        self.nodes.discard(node)


def shrink(cfg, drop: list[str]):
    data = yaml.safe_load(cfg.read_text())
    data["spec"]["hosts"] = [h for h in data["spec"]["hosts"] if h["address"] not in {ADDR[n] for n in drop}]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def setup(cluster, monkeypatch):
    from ccp.cluster import facts

    fc, cfg = cluster()
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}
    port = NodesPortFake(fc)
    monkeypatch.setattr(facts, "nodes_port", lambda ctx: port)
    return fc, cfg, port


def test_scale_down_plan_order_and_rerun(cluster, monkeypatch):
    fc, cfg, port = setup(cluster, monkeypatch)
    shrink(cfg, ["fk-worker-3", "fk-cp-2", "fk-cp-3"])

    plan = run_ccp("plan", "--config", cfg, "--output", "json")
    phase = next(p for p in json.loads(plan.out)["phases"] if p["phase"] == "nodes/remove")
    shown = [(a["verb"], a["target"]) for a in phase["actions"]]
    assert shown == [("drain", "node fk-worker-3"), ("delete", "node fk-worker-3"),
                     ("drain", "node fk-cp-3"), ("remove", "etcd member fk-cp-3"), ("delete", "node fk-cp-3"),
                     ("drain", "node fk-cp-2"), ("remove", "etcd member fk-cp-2"), ("delete", "node fk-cp-2")]
    assert "1 left after this one" in json.dumps(phase)
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}, "a plan changes nothing"

    refused = run_ccp("install", "--config", cfg, "--until", "kubeconfig")     # no --yes, no terminal
    assert refused.code == 2 and fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}

    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.etcd == {"fk-cp-1"} and port.nodes == fc.members == {"fk-cp-1", "fk-worker-1", "fk-worker-2"}
    assert [e for e in port.events if e[0] != "evict"] == [
        ("cordon", "fk-worker-3"), ("delete", "fk-worker-3"), ("cordon", "fk-cp-3"), ("delete", "fk-cp-3"),
        ("cordon", "fk-cp-2"), ("delete", "fk-cp-2")]
    ssh = [(rec.node, "remove" if "member remove" in rec.script else "reset")
           for rec in fc.records[before:] if "member remove" in rec.script or "kubeadm reset" in rec.script]
    assert ssh == [("fk-worker-3", "reset"), ("fk-cp-1", "remove"), ("fk-cp-3", "reset"),
                   ("fk-cp-1", "remove"), ("fk-cp-2", "reset")]
    state = cfg.parent / ".ccp" / "fk"
    journal = [json.loads(x) for x in (state / "journal.jsonl").read_text().splitlines()]
    done = [e for e in journal if e["event"] == "done" and e["phase"] == "nodes/remove"][-1]
    assert done["outputs"]["removed"] == ["fk-worker-3", "fk-cp-3", "fk-cp-2"]
    prov = [e for e in journal if e["event"] == "done" and e["phase"] == "provision"][-1]
    assert sorted(prov["outputs"]["nodes"]) == ["fk-cp-1", "fk-lb-1", "fk-worker-1", "fk-worker-2"]

    before = len(fc.records)
    again = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert again.code == 0, again.text
    assert not [m for m in fc.mutating() if m in fc.records[before:]], "the rerun changes nothing"


@pytest.mark.parametrize("step, etcd_after", [
    (("cordon", "fk-cp-3"), {"fk-cp-1", "fk-cp-2", "fk-cp-3"}),   # before anything of fk-cp-3 went
    (("delete", "fk-cp-3"), {"fk-cp-1", "fk-cp-2"}),              # after its etcd member went, before its Node
    (("cordon", "fk-cp-2"), {"fk-cp-1", "fk-cp-2"}),              # between the two control planes
])
def test_ctrl_c_mid_removal_then_rerun_converges(cluster, monkeypatch, step, etcd_after):
    fc, cfg, port = setup(cluster, monkeypatch)
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])
    port.interrupt_at = step
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 130, r.text
    assert fc.etcd == etcd_after
    phases = run_ccp("phases", "--config", cfg)
    assert "interrupted" in phases.out

    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.etcd == {"fk-cp-1"} and port.nodes == {"fk-cp-1", "fk-worker-1", "fk-worker-2", "fk-worker-3"}
    removes = [rec for rec in fc.records if "member remove" in rec.script]
    assert len(removes) == 2, "each member removed exactly once"
    assert [e for e in port.events if e[0] == "delete"] == [("delete", "fk-cp-3"), ("delete", "fk-cp-2")]


def test_provision_refuses_to_delete_machines_still_in_the_cluster(cluster, monkeypatch):
    """With nodes/remove skipped, the nodes are still members: provision stops before touching a machine."""
    fc, cfg, port = setup(cluster, monkeypatch)
    shrink(cfg, ["fk-worker-3"])
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig", "--skip-phases", "nodes/remove")
    assert r.code == 3 and "still nodes of the cluster" in r.err and "nodes/remove" in r.err
    assert "fk-worker-3" in port.nodes and "fk-worker-3" in fc.members


def test_unhealthy_etcd_stops_before_any_member_is_removed(cluster, monkeypatch):
    fc, cfg, port = setup(cluster, monkeypatch)
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])
    fc.etcd_unhealthy = True
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 6, r.text
    assert "could lose quorum" in r.err and "to fix" in r.err
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}


def test_node_replace_rejoins_only_that_node(cluster, monkeypatch):
    fc, cfg, port = setup(cluster, monkeypatch)
    before = len(fc.records)
    r = run_ccp("node", "replace", "fk-cp-2", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    from ccp.phases.kubeadm import RESET_LEFTOVERS

    # the join's check for a half-way join's leftovers (none here: the node was reset) is not a reset
    new = [rec for rec in fc.records[before:] if rec.script != RESET_LEFTOVERS]
    touched = {rec.node for rec in new if any(m in rec.script for m in ("kubeadm join", "kubeadm reset",
                                                                          "bash /var/lib/ccp/prepare-node.sh"))}
    assert touched == {"fk-cp-2"}
    order = [("reset" if "kubeadm reset" in rec.script else "remove" if "member remove" in rec.script
              else "prepare" if "prepare-node.sh" in rec.script else "join")
             for rec in new if any(m in rec.script for m in ("kubeadm reset", "member remove", "bash /var/lib/ccp/prepare",
                                                              "kubeadm join"))]
    assert order == ["remove", "reset", "prepare", "join"]
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}, "the member is back after the join"
    assert ("delete", "fk-cp-2") in port.events and "replaced" in r.err


def test_a_broken_control_plane_is_replaced_while_the_others_are_healthy(cluster, monkeypatch):
    fc, cfg, port = setup(cluster, monkeypatch)
    fc.etcd_sick = {"fk-cp-3"}                # its own member is down: that is why it is replaced
    r = run_ccp("node", "replace", "fk-cp-3", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert len([rec for rec in fc.records if "member remove" in rec.script]) == 1
    fc.etcd_sick = {"fk-cp-2"}                # another member is down: replacing fk-cp-3 now would risk quorum
    port.events.clear()
    r = run_ccp("node", "replace", "fk-cp-3", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 6 and "etcd is not healthy (fk-cp-2)" in r.err and "could lose quorum" in r.err
    assert "bring fk-cp-2 back first" in r.err and "nothing was changed" in r.err
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}
    # the refusal used to come after the drain, which left fk-cp-3 cordoned and its pods evicted
    assert port.events == [], "refused, yet the node was drained"


def test_replacing_a_control_plane_while_another_does_not_answer_is_refused_before_anything(cluster, monkeypatch):
    """With one control plane's machine killed, replacing another used to stop on "probing cluster membership failed"
    and the advice to resume; it now says what is at stake and what to do, and changes nothing."""
    fc, cfg, port = setup(cluster, monkeypatch)
    fc.down("fk-cp-3")
    before = len(fc.records)
    r = run_ccp("node", "replace", "fk-cp-2", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 6, r.text
    assert "control plane fk-cp-3 does not answer: removing the etcd member of fk-cp-2 now could lose quorum" in r.err
    assert "ccp node replace fk-cp-3" in r.err and "nothing was changed" in r.err and "Traceback" not in r.err
    assert port.events == [] and not [x for x in fc.records[before:] if any(m in x.script for m in MUTATING)]
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}


def test_the_first_control_plane_is_replaced_and_joins_the_cluster_the_others_hold(cluster, monkeypatch):
    """fk-cp-1, which the cluster was initialised from: its etcd member is removed through fk-cp-2, and
    it comes back by joining as a control plane (join secrets from fk-cp-2), never by a new kubeadm init."""
    fc, cfg, port = setup(cluster, monkeypatch)
    before = len(fc.records)
    r = run_ccp("node", "replace", "fk-cp-1", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    new = fc.records[before:]
    assert not [rec for rec in new if "kubeadm init --config" in rec.script], "a second cluster must never be made"
    removes = [rec.node for rec in new if "member remove" in rec.script]
    tokens = [rec.node for rec in new if rec.script.startswith("kubeadm token create")]
    joins = [rec.node for rec in new if "kubeadm join" in rec.script]
    assert removes == ["fk-cp-2"] and tokens == ["fk-cp-2"] and joins == ["fk-cp-1"]
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"} and "fk-cp-1" in fc.admin_conf

    fc.admin_conf.discard("fk-cp-1")          # broken again: backups go through the control plane that holds the cluster
    assert run_ccp("backup", "--config", cfg).code == 0
    assert [r.node for r in fc.records if "snapshot save" in r.script][-1] == "fk-cp-2"
    fc.admin_conf.add("fk-cp-1")

    again = len(fc.records)                  # and the cluster is whole: a rerun changes nothing
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    assert not [m for m in fc.mutating() if m in fc.records[again:]]


def test_node_replace_refuses_what_it_cannot_do_safely(cluster, monkeypatch):
    fc, cfg, port = setup(cluster, monkeypatch)
    for name, words in (("fk-lb-1", "load balancer"), ("nope", "no node nope")):
        r = run_ccp("node", "replace", name, "--config", cfg, "--yes")
        assert r.code == 2 and words in r.err and "to fix" in r.err, r.text
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"} and not port.events


def test_node_replace_on_a_cluster_that_is_not_there_installs_nothing(cluster, tmp_path):
    """Found on real nodes: `ccp node replace` on a destroyed cluster said the install workflow would change nothing
    but that node, then installed a whole new cluster (6 machines, kubeadm init, add-ons) in 3 minutes."""
    fc, cfg = cluster()
    r = run_ccp("node", "replace", "fk-worker-1", "--config", cfg, "--yes")
    assert r.code == 3 and "cluster fk has no machines (never installed, or destroyed): there is no fk-worker-1" in r.err
    assert "to fix: `ccp install` creates the cluster" in r.err and "Traceback" not in r.err
    assert fc.mutating() == [] and not fc.initialized


def test_control_plane_one_to_three_and_back(cluster, monkeypatch):
    from ccp.cluster import facts

    fc, cfg = cluster()
    full = cfg.read_text()
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    assert fc.etcd == {"fk-cp-1"}
    port = NodesPortFake(fc)
    monkeypatch.setattr(facts, "nodes_port", lambda ctx: port)

    cfg.write_text(full)                    # 1 -> 3: joined one at a time (kubeadm adds the member before the join)
    before = len(fc.records)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    joins = [rec for rec in fc.records[before:] if "kubeadm join" in rec.script]
    assert [j.node for j in joins] == ["fk-cp-2", "fk-cp-3"] and joins[0].end <= joins[1].start
    assert fc.etcd == {"fk-cp-1", "fk-cp-2", "fk-cp-3"}
    assert not [rec for rec in fc.records[before:] if "prepare-node.sh" in rec.script and "-cp-" not in rec.node]

    port.nodes = set(fc.members)
    shrink(cfg, ["fk-cp-2", "fk-cp-3"])     # and back to 1, with the day-2 name of the same command
    r = run_ccp("apply", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0, r.text
    assert fc.etcd == {"fk-cp-1"} and "fk-cp-2" not in port.nodes and "fk-cp-3" not in port.nodes
