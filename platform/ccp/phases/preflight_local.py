"""preflight/local: with provisioner: local, check this host before any machine is made — root,
systemd-nspawn and mmdebstrap, kernel features, free memory for the nodes, the address range unused,
inotify instances (raised with a note, never silently). Runs on every install; failures together."""

from __future__ import annotations

from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


class PreflightLocal(Phase):
    name = "preflight/local"
    layer = "infrastructure"
    summary = "check this host can run the local machines: root, tools, kernel, memory, addresses"
    always = True

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"local": ctx.spec_dump()["spec"]["local"], "ignored": sorted(ctx.ignore_preflight)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        if ctx.config.spec.provisioner != "local":
            return []
        return [Action("check", "this host", "root, tools, kernel features, memory, addresses, inotify")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.providers.checks import local_checks, raise_on_failures

        if not actions:
            return {"skipped": f"provisioner {ctx.config.spec.provisioner}: no local machines"}
        results = local_checks(ctx)
        ctx.reporter.checks(results)
        raise_on_failures(results)
        return {r.name: r.status for r in results}
