"""provision: make the cluster's machines exist — VMs through Terraform or pyvmomi, or the
static hosts as listed — and record each one's address and identity for the later phases."""

from __future__ import annotations

from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


class Provision(Phase):
    name = "provision"
    layer = "infrastructure"
    summary = "create the VMs, power them on and wait for their addresses"

    def inputs(self, ctx: ClusterContext) -> dict:
        spec = ctx.spec_dump()["spec"]
        return {"provisioner": spec["provisioner"], "vsphere": spec.get("vsphere"),
                "nodes": [{"name": n.name, "role": n.role, "address": str(n.address), "cpus": n.cpus,
                           "memoryMiB": n.memoryMiB, "diskGiB": n.diskGiB} for n in inventory.build(ctx.config)]}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return ctx.provider().plan()

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        nodes = ctx.provider().apply(actions)
        return {"provisioner": ctx.config.spec.provisioner, "nodes": nodes}


class DestroyMachines(Phase):
    name = "destroy/machines"
    layer = "infrastructure"
    summary = "power off and delete the VMs this cluster owns (never anyone else's)"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"provisioner": ctx.config.spec.provisioner}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return ctx.provider().destroy_plan()

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        return ctx.provider().destroy(actions)
