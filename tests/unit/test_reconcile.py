"""The scale-down plan over many before/after configs (hypothesis): which nodes leave, in what order,
and what nodes/remove would do for each — with the cluster's answers from NodesPortFake and a fixed
etcd member list — and the order nodes/remove acts in, etcd members included, with EtcdSSHFake answering
for the control planes (logic only; the SSH and API sides are tested in tests/ssh and tests/e2e)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccp import ui
from ccp.cluster import facts
from ccp.config import inventory
from ccp.config.load import load
from ccp.context import ClusterContext
from ccp.phases import nodes_remove
from tests.conftest import example_data, write_config

SHAPES = st.fixed_dictionaries({
    "cp": st.sampled_from([1, 3, 5]),
    "pools": st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=3),
})


class NodesPortFake:
    def __init__(self, names):
        self.names = set(names)

    def node_names(self):
        return sorted(self.names)


def context(tmp_path, shape, name):
    data = example_data()
    data["metadata"]["name"] = "rc"
    data["spec"]["nodes"]["controlPlane"]["count"] = shape["cp"]
    data["spec"]["nodes"]["workers"] = [{"name": f"p{i}", "count": c, "cpus": 2, "memoryMiB": 4096, "diskGiB": 40}
                                        for i, c in enumerate(shape["pools"])]
    data["spec"]["nodes"]["network"]["addresses"] = "10.10.0.20-10.10.0.90"
    return ClusterContext(state_dir=tmp_path / name, reporter=ui.Reporter(), loaded=load(write_config(tmp_path / f"{name}.yaml", data)))


@settings(max_examples=60, deadline=None)
@given(before=SHAPES, after=SHAPES)
def test_what_leaves_and_in_what_order(tmp_path_factory, before, after):
    tmp = tmp_path_factory.mktemp("rc")
    old = context(tmp, before, "before")
    new = context(tmp, after, "after")
    recorded = {n.name: {"role": n.role, "address": str(n.address)} for n in inventory.build(old.config)}
    new.outputs["provision"] = {"nodes": recorded}
    now = {n.name for n in inventory.build(new.config)}

    leaving = facts.gone(new)
    assert set(leaving) == set(recorded) - now
    order = nodes_remove.removal_order(leaving)
    roles = [leaving[n]["role"] for n in order]
    assert roles == sorted(roles, key=lambda r: r == inventory.ROLE_CP), "workers first, then control planes"
    cps = [n for n in order if leaving[n]["role"] == inventory.ROLE_CP]
    assert cps == sorted(cps, reverse=True), "control planes from the highest number down"
    assert "rc-cp-1" not in leaving, "the first control plane never leaves by scaling"
    assert len(cps) == max(0, before["cp"] - after["cp"])


@pytest.mark.parametrize("joined, members, expect", [
    ({"rc-p0-2", "rc-p0-3"}, set(), [("drain", "node rc-p0-2"), ("delete", "node rc-p0-2"),
                                     ("drain", "node rc-p0-3"), ("delete", "node rc-p0-3")]),
    ({"rc-p0-3"}, set(), [("drain", "node rc-p0-3"), ("delete", "node rc-p0-3")]),   # rc-p0-2 is out already
    (set(), set(), []),                                                              # both out: nothing left
])
def test_remove_plan_follows_the_live_state(tmp_path, monkeypatch, joined, members, expect):
    ctx = context(tmp_path, {"cp": 1, "pools": [1]}, "c")
    ctx.outputs["provision"] = {"nodes": {n: {"role": "worker", "address": "10.0.0.9"} for n in ("rc-p0-2", "rc-p0-3")}}
    monkeypatch.setattr(facts, "nodes_port", lambda c: NodesPortFake(joined | {"rc-cp-1", "rc-p0-1"}))
    assert [(a.verb, a.target) for a in nodes_remove.RemoveNodes().plan(ctx)] == expect


def test_control_plane_removal_counts_down_the_members(tmp_path, monkeypatch):
    ctx = context(tmp_path, {"cp": 1, "pools": [1]}, "c")
    ctx.outputs["provision"] = {"nodes": {f"rc-cp-{i}": {"role": "control-plane", "address": f"10.0.0.{i}"} for i in (2, 3)}}
    monkeypatch.setattr(facts, "nodes_port", lambda c: NodesPortFake({"rc-cp-1", "rc-cp-2", "rc-cp-3"}))
    monkeypatch.setattr(nodes_remove, "etcd_members", lambda c, leaving=(): {"rc-cp-1": "a1", "rc-cp-2": "b2", "rc-cp-3": "c3"})
    monkeypatch.setattr(nodes_remove, "staying_answer", lambda c, leaving, cps: None)    # over SSH: tested below
    monkeypatch.setattr(nodes_remove, "quorum_holds", lambda c, leaving, members, exclude=(): None)
    actions = nodes_remove.RemoveNodes().plan(ctx)
    assert [(a.verb, a.target) for a in actions] == [
        ("drain", "node rc-cp-3"), ("remove", "etcd member rc-cp-3"), ("delete", "node rc-cp-3"),
        ("drain", "node rc-cp-2"), ("remove", "etcd member rc-cp-2"), ("delete", "node rc-cp-2")]
    assert [a.reason for a in actions if a.verb == "remove"] == ["one member at a time: 2 left after this one",
                                                                "one member at a time: 1 left after this one"]


class EtcdSSHFake:
    """Stands in for ccp.remote.ssh.SSH (a fake: it runs nothing). The control planes answer from a member table:
    admin.conf held, `etcdctl member list`, `endpoint health` (``sick`` members unhealthy) and `member remove`;
    `kubeadm reset` succeeds. What changes anything lands in ``log``, which the nodes port shares."""

    def __init__(self, log: list, members: dict[str, int], addresses: dict[str, str], sick=()):
        import asyncio

        self.log, self.members, self.addresses, self.sick = log, dict(members), addresses, set(sick)
        self.loop = asyncio.new_event_loop()

    def call(self, coro):
        return self.loop.run_until_complete(coro)

    async def each(self, targets, fn, limit=None):
        from ccp.remote.ssh import Fanout

        return Fanout(results={t.name: await fn(t) for t in targets})

    async def run(self, target, command, *, sudo=False, check=True, quiet=False, timeout=None):
        import json as j

        from ccp.remote.ssh import Result

        out, status = "", 0
        if command.startswith("test -f /etc/kubernetes/admin.conf"):
            status = 0 if target.name in self.members else 1
        elif "member list" in command:
            out = j.dumps({"members": [{"name": n, "ID": i} for n, i in self.members.items()]})
        elif "endpoint health" in command:
            out = j.dumps([{"endpoint": f"https://{self.addresses[n]}:2379", "health": n not in self.sick} for n in self.members])
            status = 1 if self.sick else 0
        elif "member remove" in command:
            gone = next(n for n, i in self.members.items() if format(i, "x") == command.split()[-1])
            self.members.pop(gone)
            self.log.append(("remove etcd member", gone, f"through {target.name}"))
        elif "kubeadm reset" in command:
            self.log.append(("kubeadm reset", target.name, target.address))
        return Result(target.name, command, status, out, "", 0.0)


class DrainingNodesPortFake(NodesPortFake):
    """NodesPortFake with the drain and delete calls nodes/remove makes, logged in the shared order."""

    def __init__(self, names, log):
        super().__init__(names)
        self.log = log

    def cordon(self, node, unschedulable):
        self.log.append(("cordon", node))

    def pods_on(self, node):
        return []

    def pdbs(self):
        return []

    def evict(self, ns, name):
        return None

    def pod_exists(self, ns, name):
        return False

    def delete_node(self, node):
        self.log.append(("delete node", node))
        self.names.discard(node)


def scaled_down(tmp_path, monkeypatch, sick=()):
    """A cluster of 5 control planes and 2 workers (recorded as provision records them), edited to 3 and 1."""
    before = inventory.build(context(tmp_path, {"cp": 5, "pools": [2]}, "before").config)
    ctx = context(tmp_path, {"cp": 3, "pools": [1]}, "after")
    addresses = {n.name: str(n.address) for n in before}
    ctx.outputs["provision"] = {"nodes": {n.name: {"role": n.role, "address": str(n.address)} for n in before}}
    log: list = []
    cps = [n.name for n in before if n.role == inventory.ROLE_CP]
    ssh = EtcdSSHFake(log, {n: 0x1000 + i for i, n in enumerate(cps)}, addresses, sick)
    ctx.sessions.ssh = ssh
    port = DrainingNodesPortFake({n.name for n in before if n.role != inventory.ROLE_LB}, log)
    monkeypatch.setattr(facts, "nodes_port", lambda c: port)
    return ctx, ssh, port, log, addresses


def test_control_planes_leave_one_at_a_time_etcd_member_after_the_drain_and_before_reset(tmp_path, monkeypatch):
    """5 -> 3 control planes and 2 -> 1 workers: the worker first; then each control plane from the highest
    number down, drained, its etcd member removed through a control plane that stays, then kubeadm reset on it
    (at its recorded address) and its Node object deleted — all of one before anything of the next."""
    ctx, ssh, port, log, addr = scaled_down(tmp_path, monkeypatch)
    phase = nodes_remove.RemoveNodes()
    actions = phase.plan(ctx)
    assert log == [], "the plan changes nothing"
    out = phase.apply(ctx, actions)
    assert log == [
        ("cordon", "rc-p0-2"), ("kubeadm reset", "rc-p0-2", addr["rc-p0-2"]), ("delete node", "rc-p0-2"),
        ("cordon", "rc-cp-5"), ("remove etcd member", "rc-cp-5", "through rc-cp-1"),
        ("kubeadm reset", "rc-cp-5", addr["rc-cp-5"]), ("delete node", "rc-cp-5"),
        ("cordon", "rc-cp-4"), ("remove etcd member", "rc-cp-4", "through rc-cp-1"),
        ("kubeadm reset", "rc-cp-4", addr["rc-cp-4"]), ("delete node", "rc-cp-4")]
    assert set(ssh.members) == {"rc-cp-1", "rc-cp-2", "rc-cp-3"} and out["removed"] == ["rc-p0-2", "rc-cp-5", "rc-cp-4"]
    # a rerun finds nothing left to do: no member removed twice
    assert phase.plan(ctx) == []


def test_a_sick_member_that_stays_stops_the_removal_before_any_member_goes(tmp_path, monkeypatch):
    from ccp.errors import KubernetesError

    ctx, ssh, port, log, _ = scaled_down(tmp_path, monkeypatch, sick={"rc-cp-2"})
    phase = nodes_remove.RemoveNodes()
    with pytest.raises(KubernetesError) as info:
        phase.apply(ctx, phase.plan(ctx))
    assert "etcd is not healthy (rc-cp-2)" in info.value.message and "could lose quorum" in info.value.message
    assert len(ssh.members) == 5
    assert log == [], "refused in the plan, before the first drain: nothing cordoned, nothing removed"


def test_a_sick_leaving_member_is_still_removed(tmp_path, monkeypatch):
    """The member that is leaving may be the broken one: only the others must be healthy."""
    ctx, ssh, port, log, _ = scaled_down(tmp_path, monkeypatch, sick={"rc-cp-5"})
    phase = nodes_remove.RemoveNodes()
    phase.apply(ctx, phase.plan(ctx))
    assert set(ssh.members) == {"rc-cp-1", "rc-cp-2", "rc-cp-3"}
    assert [e[1] for e in log if e[0] == "remove etcd member"] == ["rc-cp-5", "rc-cp-4"]


def test_nodes_leave_the_cluster_before_their_machines_go():
    from ccp import workflows

    names = [p.name for p in workflows.install()]
    assert names.index("nodes/remove") < names.index("provision")
