"""provision: make the cluster's machines exist — VMs through Terraform or pyvmomi, or the
static hosts as listed — and record each one's address and identity for the later phases."""

from __future__ import annotations

from ccp.cluster import facts
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
                           "memoryMiB": n.memoryMiB, "diskGiB": n.diskGiB} for n in ctx.nodes]}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        actions = ctx.provider().plan()
        leaving = sorted(facts.gone(ctx))
        return actions + (ctx.provider().remove_plan(leaving) if leaving else [])

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        leaving = sorted(facts.gone(ctx))
        if leaving:
            _refuse_if_still_members(ctx, leaving)
        builds = [a for a in actions if a.verb != "destroy"]
        nodes = ctx.provider().apply(builds) if builds or not leaving else ctx.outputs["provision"]["nodes"]
        removed = ctx.provider().remove(leaving) if leaving else []
        nodes = {n: rec for n, rec in nodes.items() if n not in leaving}
        return {"provisioner": ctx.config.spec.provisioner, "nodes": nodes, "removed": removed,
                "hostKeysPinned": _pin_reported_keys(ctx, nodes)}


def _pin_reported_keys(ctx: ClusterContext, nodes: dict[str, dict]) -> dict[str, str]:
    """A provider that can read a machine's host key from the machine itself (local machines) reports it:
    pinned before first contact, and re-pinned when the machine was made anew."""
    from ccp.remote.hostkeys import HostKeys, pin_known

    port = ctx.config.spec.ssh.port
    keys = {HostKeys.label(rec["address"], port): rec["hostKey"] for rec in nodes.values() if rec.get("hostKey")}
    if not keys:
        return {}
    from asyncssh import import_public_key

    changed = pin_known(ctx.state_dir / "known_hosts", keys)
    if ctx.sessions.ssh is not None:   # a session made earlier in this run must trust the new pins too
        ctx.sessions.ssh.hostkeys.keys.update(changed)
    return {label: import_public_key(key).get_fingerprint("sha256") for label, key in sorted(changed.items())}


def _refuse_if_still_members(ctx: ClusterContext, leaving: list[str]) -> None:
    """A VM is deleted only once its node is out of the cluster (the nodes/remove phase did that)."""
    from ccp.errors import PreflightError

    port = facts.nodes_port(ctx)
    still = sorted(set(leaving) & set(port.node_names())) if port is not None else []
    if still:
        raise PreflightError(f"the VMs of {', '.join(still)} would be deleted while they are still nodes of the cluster",
                             "let the nodes/remove phase drain and remove them first (do not skip it), then rerun")


class DestroyMachines(Phase):
    name = "destroy/machines"
    layer = "infrastructure"
    summary = "power off and delete the VMs this cluster owns (never anyone else's)"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"provisioner": ctx.config.spec.provisioner}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return ctx.provider().destroy_plan()

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        out = ctx.provider().destroy(actions)
        # Its credentials open a cluster that is gone; left behind, the next install's probes would take
        # whatever answers at the VIP for that cluster (found on a host whose network answers any address).
        stale = facts.kubeconfig_path(ctx)
        if stale.exists():
            stale.unlink()
            out = {**out, "kubeconfigRemoved": str(stale)}
        return out
