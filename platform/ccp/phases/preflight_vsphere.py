"""preflight/vsphere: check vCenter before anything is created — access, inventory, capacity and
names. Runs on every install (the environment changes); all checks run, failures are reported together."""

from __future__ import annotations

from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.providers.checks import check_vsphere, raise_on_failures


class PreflightVsphere(Phase):
    name = "preflight/vsphere"
    layer = "infrastructure"
    summary = "check vCenter: login and TLS, inventory names, capacity, name conflicts"
    always = True

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"vsphere": ctx.spec_dump()["spec"].get("vsphere"), "ignored": sorted(ctx.ignore_preflight)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        if ctx.config.spec.provisioner in ("static", "local"):
            return []
        from ccp.providers.vsphere_preflight import CHECKS

        return [Action("check", f"vCenter {ctx.config.spec.vsphere.server}", f"{len(CHECKS)} checks", len(CHECKS))]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        if not actions:
            return {"skipped": f"provisioner {ctx.config.spec.provisioner}: no vCenter to check"}
        results = check_vsphere(ctx)
        ctx.reporter.checks(results)
        raise_on_failures(results)
        return {r.name: r.status for r in results}
