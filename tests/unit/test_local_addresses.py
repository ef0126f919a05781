"""provisioner: local with addresses that stay put, from the files alone (no machine is started): the
machines of a running cluster are their records under machinesDir (machine.json, owner, address, bridge)
and the journal's provision record; growing the control planes or the load balancers plans only the new
machines, each at a free address, and finds no conflict — which the role-order addresses used to raise for
every worker. A genuine clash (another machine on a new node's address) is still refused before anything
boots."""

from __future__ import annotations

import json
import os

import pytest

from ccp import ui
from ccp.config.load import load
from ccp.context import ClusterContext
from ccp.errors import InfrastructureError
from ccp.providers.local import LocalProvider, bridge_name
from ccp.providers.local_probes import _proc
from tests.unit.test_local_config import local_copy

# examples/local.yaml: 2 load balancers, 3 control planes, 2 workers from 10.77.0.10
RUNNING = {"local-lb-1": "10.77.0.10", "local-lb-2": "10.77.0.11", "local-cp-1": "10.77.0.12", "local-cp-2": "10.77.0.13",
           "local-cp-3": "10.77.0.14", "local-worker-1": "10.77.0.15", "local-worker-2": "10.77.0.16"}


def context(tmp_path, cp=3, lb=2) -> ClusterContext:
    def edit(spec):
        spec["local"] = {"machinesDir": str(tmp_path / "machines"), "rootfsCache": str(tmp_path / "rootfs")}
        spec["ssh"]["privateKeyFile"] = "~/.ssh/id_ed25519"
        spec["nodes"]["controlPlane"]["count"] = cp
        spec["loadBalancer"]["nginx"]["count"] = lb
    loaded = load(local_copy(tmp_path, edit), defer_secrets=True)
    return ClusterContext(state_dir=tmp_path / "state", reporter=ui.Reporter(), loaded=loaded)


def machine(tmp_path, name: str, address: str, cluster: str = "local", bridge: str = "ccp-local") -> None:
    """The record a booted machine leaves, its launcher this test's own process (so it reads as running)."""
    (tmp_path / "machines" / name).mkdir(parents=True)
    (tmp_path / "machines" / name / "machine.json").write_text(json.dumps({
        "cluster": cluster, "name": name, "address": address, "bridge": bridge, "provisioned": True,
        "launcher_pid": os.getpid(), "launcher_start": _proc(os.getpid())[1]}))


def running_cluster(tmp_path, **shape) -> ClusterContext:
    for name, address in RUNNING.items():
        machine(tmp_path, name, address)
    ctx = context(tmp_path, **shape)
    assert bridge_name(ctx.config) == "ccp-local"
    ctx.outputs["provision"] = {"provisioner": "local", "nodes": {
        n: {"role": "worker", "address": a, "veth": f"ve-{n}"} for n, a in RUNNING.items()}}
    return ctx


@pytest.mark.parametrize("shape, new", [
    ({"cp": 5}, {"local-cp-4": "10.77.0.17", "local-cp-5": "10.77.0.18"}),
    ({"lb": 3}, {"local-lb-3": "10.77.0.17"}),
    ({"cp": 5, "lb": 3}, {"local-lb-3": "10.77.0.17", "local-cp-4": "10.77.0.18", "local-cp-5": "10.77.0.19"}),
])
def test_growing_plans_only_the_new_machines_at_free_addresses(tmp_path, shape, new):
    ctx = running_cluster(tmp_path, **shape)
    actions = LocalProvider(ctx).plan()
    assert [(a.verb, a.target, a.reason) for a in actions] == [
        ("create", f"machine {n}", f"new machine at {a}") for n, a in new.items()]
    specs = {s.name: s.address for s in LocalProvider(ctx)._specs()}
    assert {n: specs[n] for n in RUNNING} == {n: f"{a}/24" for n, a in RUNNING.items()}


def test_without_the_record_the_old_refusal_names_the_moved_machines(tmp_path):
    """The state directory that lost its record (or the role-order addresses of before) would give the
    workers other addresses: every one is named, nothing is planned."""
    ctx = running_cluster(tmp_path, cp=5)
    ctx.outputs.clear()
    with pytest.raises(InfrastructureError) as info:
        LocalProvider(ctx).plan()
    assert "local-worker-1 exists with address 10.77.0.15 (cluster.yaml: 10.77.0.17)" in info.value.details
    assert "state directory that recorded these machines" in info.value.resolution


def test_another_machine_on_a_new_nodes_address_is_still_refused(tmp_path):
    ctx = running_cluster(tmp_path, cp=5)
    machine(tmp_path, "someone-else", "10.77.0.18", cluster="other")
    with pytest.raises(InfrastructureError) as info:
        LocalProvider(ctx).plan()
    assert info.value.details == ["local-cp-5 would take 10.77.0.18, which machine someone-else holds"]
