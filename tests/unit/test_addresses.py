"""Addresses that stay put: inventory.build with the addresses the last provision recorded. Existing nodes
keep theirs whatever grows (load balancers, control planes, any pool); new nodes take the lowest free
address of the range; a removed node's address is free once its record is gone; a fresh config gets
exactly the role-order addresses it always had; a range that cannot hold the new nodes is a ConfigError."""

from __future__ import annotations

import ipaddress

import pytest

from ccp.config import inventory
from ccp.config.load import load
from ccp.errors import EXIT_CONFIG, ConfigError
from tests.conftest import example_data, write_config


def config(tmp_path, *, cp=3, lb=2, pools=(("default", 3),), addresses="10.10.0.20-10.10.0.60", edit=None):
    data = example_data()   # cluster demo: VIP 10.10.0.10, gateway 10.10.0.1, DNS 10.10.0.2
    spec = data["spec"]
    spec["nodes"]["controlPlane"]["count"] = cp
    spec["loadBalancer"]["nginx"]["count"] = lb
    spec["nodes"]["workers"] = [{"name": n, "count": c, "cpus": 2, "memoryMiB": 4096, "diskGiB": 40} for n, c in pools]
    spec["nodes"]["network"]["addresses"] = addresses
    if edit:
        edit(spec)
    path = tmp_path / f"c{len(list(tmp_path.glob('c*.yaml')))}.yaml"
    return load(write_config(path, data)).config


def record(nodes) -> dict[str, str]:
    """What the provision phase records for each machine, as {name: address}."""
    return {n.name: str(n.address) for n in nodes}


def addresses(nodes) -> dict[str, str]:
    return {n.name: str(n.address) for n in nodes}


def test_a_fresh_config_gets_the_role_order_addresses(tmp_path):
    cfg = config(tmp_path)
    expect = {"demo-lb-1": "10.10.0.20", "demo-lb-2": "10.10.0.21", "demo-cp-1": "10.10.0.22", "demo-cp-2": "10.10.0.23",
              "demo-cp-3": "10.10.0.24", "demo-default-1": "10.10.0.25", "demo-default-2": "10.10.0.26",
              "demo-default-3": "10.10.0.27"}
    assert addresses(inventory.build(cfg)) == expect
    assert inventory.build(cfg, recorded={}) == inventory.build(cfg) == inventory.build(cfg, recorded=None)
    # recorded exactly as a fresh build hands them out: nothing moves
    assert inventory.build(cfg, recorded=record(inventory.build(cfg))) == inventory.build(cfg)


def test_control_planes_three_to_five_keep_every_address_and_take_free_ones(tmp_path):
    three = inventory.build(config(tmp_path, cp=3))
    five = inventory.build(config(tmp_path, cp=5), recorded=record(three))
    got = addresses(five)
    assert {n: got[n] for n in record(three)} == record(three), "no existing node moves"
    assert got["demo-cp-4"] == "10.10.0.28" and got["demo-cp-5"] == "10.10.0.29"   # the lowest free ones
    assert [n.name for n in five] == ["demo-lb-1", "demo-lb-2"] + [f"demo-cp-{i}" for i in range(1, 6)] + \
        [f"demo-default-{i}" for i in range(1, 4)], "still in role order (the first control plane first)"
    assert len(set(got.values())) == len(got)
    # the same records give the same answer (a failed run retried does not shuffle the new nodes)
    assert inventory.build(config(tmp_path, cp=5), recorded=record(three)) == five


def test_control_planes_five_to_three_free_the_two_addresses_once_their_machines_are_gone(tmp_path):
    three = inventory.build(config(tmp_path, cp=3))
    five = inventory.build(config(tmp_path, cp=5), recorded=record(three))
    back = config(tmp_path, cp=3)
    # in the run that removes them, cp-4 and cp-5 are still recorded: their machines exist until provision deletes them
    during = inventory.build(back, recorded=record(five))
    assert addresses(during) == record(three)
    with_worker = config(tmp_path, cp=3, pools=(("default", 4),))
    assert addresses(inventory.build(with_worker, recorded=record(five)))["demo-default-4"] == "10.10.0.30"
    # provision deleted them and recorded the three that are left: both addresses are free again
    after = record(during)
    assert addresses(inventory.build(with_worker, recorded=after))["demo-default-4"] == "10.10.0.28"


def test_more_load_balancers_move_no_control_plane_or_worker(tmp_path):
    two = inventory.build(config(tmp_path, lb=2))
    three = addresses(inventory.build(config(tmp_path, lb=3), recorded=record(two)))
    assert {n: three[n] for n in record(two)} == record(two)
    assert three["demo-lb-3"] == "10.10.0.28"
    # from no load balancer at all (keepalived on the control planes) to two
    none = inventory.build(config(tmp_path, lb=0))
    grown = addresses(inventory.build(config(tmp_path, lb=2), recorded=record(none)))
    assert {n: grown[n] for n in record(none)} == record(none)
    assert (grown["demo-lb-1"], grown["demo-lb-2"]) == ("10.10.0.26", "10.10.0.27")


def test_a_worker_removed_from_the_middle_frees_its_address_for_the_next_new_worker(tmp_path):
    before = inventory.build(config(tmp_path, pools=(("a", 2), ("b", 2))))
    assert addresses(before)["demo-a-2"] == "10.10.0.26"            # between demo-a-1 and demo-b-1
    smaller = inventory.build(config(tmp_path, pools=(("a", 1), ("b", 2))), recorded=record(before))
    assert "demo-a-2" not in addresses(smaller)
    assert addresses(smaller) == {n: a for n, a in record(before).items() if n != "demo-a-2"}
    # a later run adds a worker to the last pool: it takes the lowest free address, the one demo-a-2 gave up
    later = addresses(inventory.build(config(tmp_path, pools=(("a", 1), ("b", 3))), recorded=record(smaller)))
    assert later["demo-b-3"] == "10.10.0.26"
    assert {n: later[n] for n in record(smaller)} == record(smaller)


def test_a_new_node_skips_what_the_config_pins_inside_the_range(tmp_path):
    """A DNS server (or the bastion) inside the range is no node's address: skipped, and counted by the check."""
    def pin(spec):
        spec["nodes"]["network"]["dns"] = ["10.10.0.21"]
        spec["ssh"]["bastion"] = {"address": "10.10.0.23"}
    cfg = config(tmp_path, edit=pin)
    got = [str(n.address) for n in inventory.build(cfg)]
    assert "10.10.0.21" not in got and "10.10.0.23" not in got
    assert got[:4] == ["10.10.0.20", "10.10.0.22", "10.10.0.24", "10.10.0.25"]

    def tight(spec):   # 8 nodes, 9 addresses, one of them the DNS server's
        pin(spec)
        spec["nodes"]["network"]["addresses"] = "10.10.0.20-10.10.0.28"
        spec["ssh"]["bastion"] = {"address": "bastion.example.com"}
    with pytest.raises(ConfigError) as info:
        config(tmp_path, edit=tight, pools=(("default", 4),))
    detail = "\n".join(info.value.details)
    assert "holds 8 addresses free for nodes (10.10.0.21 pinned by cluster.yaml) but the cluster needs 9" in detail
    assert "widen the range to at least 10 addresses" in detail


def test_a_range_too_small_for_the_new_nodes_is_a_config_error_saying_what_to_do(tmp_path):
    """The config check counts cluster.yaml's nodes; in the run that removes nodes and adds others, the leaving
    machines still hold their addresses, and the range may run out: said before anything is made."""
    rng = "10.10.0.20-10.10.0.27"   # exactly 8
    before = inventory.build(config(tmp_path, addresses=rng))
    swapped = config(tmp_path, lb=1, pools=(("default", 3), ("b", 1)), addresses=rng)   # one LB out, one worker in
    with pytest.raises(ConfigError) as info:
        inventory.build(swapped, recorded=record(before))
    err = info.value
    assert err.code == EXIT_CONFIG == 2
    assert err.message == ("the node address range 10.10.0.20-10.10.0.27 has no free address left for demo-b-1 "
                           "(7 existing node(s) keep their addresses, 1 removed node(s) hold theirs until their "
                           "machines are deleted)")
    assert "\n" not in err.message and "\n" not in err.resolution
    assert err.resolution.startswith("widen spec.nodes.network.addresses or add fewer nodes")
    # once the load balancer's machine is gone (its record dropped), the same config fits
    after = {n: a for n, a in record(before).items() if n != "demo-lb-2"}
    assert addresses(inventory.build(swapped, recorded=after))["demo-b-1"] == "10.10.0.21"


def test_records_that_are_not_addresses_are_ignored_and_static_hosts_keep_their_own(tmp_path):
    cfg = config(tmp_path)
    fresh = inventory.build(cfg)
    assert inventory.build(cfg, recorded={"demo-cp-1": "", "demo-cp-2": "not-an-ip"}) == fresh
    # a recorded address outside the range (the range was edited) is where the machine is: it stays, and the
    # nodes with no record take the lowest free ones
    moved = addresses(inventory.build(cfg, recorded={"demo-cp-1": "10.10.0.200"}))
    assert moved["demo-cp-1"] == "10.10.0.200" and moved["demo-lb-1"] == "10.10.0.20" and moved["demo-cp-2"] == "10.10.0.22"

    data = example_data()
    data["spec"]["provisioner"] = "static"
    data["spec"]["hosts"] = [{"address": "10.10.0.5", "role": "control-plane"}, {"address": "10.10.0.6", "role": "worker"}]
    static = load(write_config(tmp_path / "static.yaml", data)).config
    assert inventory.build(static, recorded={"demo-cp-1": "10.10.0.99"}) == inventory.build(static)


def test_many_scalings_never_move_a_node_nor_share_an_address(tmp_path):
    """A walk through counts up and down: after each step every surviving node has the address it had."""
    steps = [dict(cp=3, lb=2, pools=(("a", 2), ("b", 1))), dict(cp=5, lb=2, pools=(("a", 2), ("b", 1))),
             dict(cp=5, lb=3, pools=(("a", 1), ("b", 3))), dict(cp=3, lb=3, pools=(("a", 3), ("b", 3))),
             dict(cp=1, lb=0, pools=(("a", 3), ("b", 0))), dict(cp=5, lb=2, pools=(("a", 4), ("b", 2)))]
    rec: dict[str, str] = {}
    for shape in steps:
        nodes = inventory.build(config(tmp_path, **shape), recorded=rec)
        got = addresses(nodes)
        assert all(got[n] == a for n, a in rec.items() if n in got)
        assert len(set(got.values())) == len(got)
        assert all(ipaddress.IPv4Address("10.10.0.20") <= n.address <= ipaddress.IPv4Address("10.10.0.60") for n in nodes)
        rec = record(nodes)   # provision: the machines of this config, the removed ones deleted


def test_a_fresh_cluster_through_the_context_renders_exactly_the_golden_files(tmp_path):
    """No record yet (a first install): ClusterContext.nodes is the plain inventory, and what the render phase
    writes is the golden copy, byte for byte."""
    from ccp.context import ClusterContext
    from tests.conftest import ROOT

    loaded = load(write_config(tmp_path / "c.yaml", example_data()))
    ctx = ClusterContext(state_dir=tmp_path / "state", loaded=loaded)
    assert ctx.nodes == inventory.build(loaded.config)
    golden = ROOT / "tests" / "golden" / "example"
    files = ctx.rendered.files
    assert set(files) == {str(p.relative_to(golden)) for p in golden.rglob("*") if p.is_file()}
    assert all((golden / rel).read_text() == text for rel, text in files.items())


def test_the_validation_endpoints_are_the_control_planes_recorded_addresses(tmp_path):
    from ccp.context import ClusterContext
    from ccp.validation.options import from_config

    three = record(inventory.build(config(tmp_path, cp=3, lb=2)))
    data = example_data()
    data["spec"]["nodes"]["controlPlane"]["count"] = 5
    loaded = load(write_config(tmp_path / "five.yaml", data))
    ctx = ClusterContext(state_dir=tmp_path / "state", loaded=loaded)
    ctx.outputs["provision"] = {"nodes": {n: {"address": a} for n, a in three.items()}}
    opts = from_config(loaded.config, nodes=ctx.nodes)
    assert opts.endpoints == [f"https://10.10.0.{i}:6443" for i in (22, 23, 24, 28, 29)] + ["https://10.10.0.10:6443"]


def test_terraforms_own_plan_says_the_address_of_each_new_vm(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from ccp.context import ClusterContext
    from ccp.providers.vsphere_terraform import TerraformProvider

    three = record(inventory.build(config(tmp_path, cp=3)))
    data = example_data()
    data["spec"]["nodes"]["controlPlane"]["count"] = 5
    ctx = ClusterContext(state_dir=tmp_path / "state", loaded=load(write_config(tmp_path / "five.yaml", data)))
    ctx.outputs["provision"] = {"nodes": {n: {"address": a} for n, a in three.items()}}
    provider = TerraformProvider(ctx)
    (ctx.rendered_dir / "terraform").mkdir(parents=True)
    (ctx.state_dir / "terraform" / ".terraform").mkdir(parents=True)
    planned = [("create", 'vsphere_virtual_machine.node["demo-cp-4"]'), ("create", 'vsphere_virtual_machine.node["demo-cp-5"]'),
               ("update", 'vsphere_virtual_machine.node["demo-cp-1"]'), ("create", "vsphere_compute_cluster_vm_anti_affinity_rule.cp")]
    monkeypatch.setattr(provider.tf, "available", lambda: True)
    monkeypatch.setattr(provider.tf, "plan", lambda *a, **k: SimpleNamespace(planned=planned))
    assert [a.reason for a in provider.plan()] == ["terraform plan, 10.10.0.28", "terraform plan, 10.10.0.29",
                                                   "terraform plan", "terraform plan"]
