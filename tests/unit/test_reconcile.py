"""The scale-down plan over many before/after configs (hypothesis): which nodes leave, in what order,
and what nodes/remove would do for each — with the cluster's answers from NodesPortFake and a fixed
etcd member list (logic only; the SSH and API sides are tested in tests/ssh and tests/e2e)."""

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
    actions = nodes_remove.RemoveNodes().plan(ctx)
    assert [(a.verb, a.target) for a in actions] == [
        ("drain", "node rc-cp-3"), ("remove", "etcd member rc-cp-3"), ("delete", "node rc-cp-3"),
        ("drain", "node rc-cp-2"), ("remove", "etcd member rc-cp-2"), ("delete", "node rc-cp-2")]
    assert [a.reason for a in actions if a.verb == "remove"] == ["one member at a time: 2 left after this one",
                                                                "one member at a time: 1 left after this one"]
