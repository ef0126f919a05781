"""preflight/offline-bundle: with spec.offline.bundle, the install refuses to start unless the bundle
holds every image and package this cluster needs, each with a matching sha256 (checked on every run)."""

from __future__ import annotations

from ccp.cluster.facts import bundle_path
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


class PreflightBundle(Phase):
    name = "preflight/offline-bundle"
    layer = "infrastructure"
    summary = "check that the offline bundle holds everything this cluster needs"
    always = True

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"bundle": ctx.config.spec.offline.bundle}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        p = bundle_path(ctx)
        return [] if p is None else [Action("check", f"offline bundle {p}", "every item and its sha256")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.bundle import archive
        from ccp.bundle.manifest import items

        p = bundle_path(ctx)
        if p is None:
            return {"skipped": "no spec.offline.bundle"}
        verdict = archive.verify(items(ctx.config), p)
        archive.raise_unless_complete(verdict, p)
        return {"items": len(verdict.present)}
