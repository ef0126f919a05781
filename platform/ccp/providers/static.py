"""provisioner: static — the machines exist already (bare metal, pre-made VMs). Nothing is created
or destroyed; later phases reach the hosts at the addresses listed in spec.hosts."""

from __future__ import annotations

from ccp.engine.phase import Action


class StaticProvider:
    name = "static"

    def __init__(self, ctx):
        self.ctx = ctx
        self.nodes = ctx.nodes

    def plan(self) -> list[Action]:
        recorded = self.ctx.outputs.get("provision", {}).get("nodes", {})
        want = {n.name: {"role": n.role, "address": str(n.address)} for n in self.nodes}
        if {k: {"role": v.get("role"), "address": v.get("address")} for k, v in recorded.items()} == want:
            return []
        return [Action("record", f"{len(self.nodes)} existing hosts", "provisioner: static creates nothing", len(self.nodes))]

    def apply(self, actions) -> dict[str, dict]:
        return {n.name: {"role": n.role, "address": str(n.address)} for n in self.nodes}

    def remove_plan(self, names: list[str]) -> list[Action]:
        return []   # the operator's machines: taken out of the cluster by nodes/remove, never deleted

    def remove(self, names: list[str]) -> list[str]:
        return []

    def replace_plan(self, names: list[str]) -> list[Action]:
        return []   # the same host is prepared and joined again

    def replace(self, names: list[str]) -> list[str]:
        return []

    def destroy_plan(self) -> list[Action]:
        return []

    def destroy(self, actions) -> dict:
        return {"destroyed": []}

    def close(self) -> None:
        pass
