"""addons: apply the enabled add-ons in dependency order and wait until each is ready — the same
code as `ccp addons apply`. Each add-on's marker (digest of what was applied) is compared with what
cluster.yaml renders now; an add-on that is current and healthy is left alone."""

from __future__ import annotations

from ccp import addons as framework
from ccp.cluster.facts import kubeconfig_path, objects_port
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase

TIMEOUT = 900


class Addons(Phase):
    name = "addons"
    layer = "add-ons"
    summary = "apply the enabled add-ons (storage, ingress, ...) and wait until they are ready"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {r.addon.name: r.digest for r in ctx.rendered_addons}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        rendered = ctx.rendered_addons
        if not kubeconfig_path(ctx).exists():
            return [Action("apply", f"add-on {r.addon.name}", "once the kubeconfig is written") for r in rendered]
        from ccp.addons.apply import API_OF, marker_name
        from ccp.remote.kube import ObjectRef

        kube = objects_port(ctx)
        actions = []
        for r in rendered:
            data = kube.get_data(r.addon.namespace, marker_name(r.addon))
            if data is None:
                actions.append(Action("install", f"add-on {r.addon.name}", r.addon.description))
            elif data.get("digest") != r.digest:
                actions.append(Action("update", f"add-on {r.addon.name}", "cluster.yaml or ccp changed it"))
            elif not all(kube.workload(ObjectRef(API_OF[x.kind], x.kind, x.namespace, x.name)).ready for x in r.addon.readiness):
                actions.append(Action("wait for", f"add-on {r.addon.name}", "not ready"))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.addons.apply import apply_one
        from ccp.config.versions import bom_of

        cfg = ctx.config
        bom = bom_of(cfg)
        todo = {a.target.removeprefix("add-on ") for a in actions}
        done = {}
        for r in ctx.rendered_addons:
            if r.addon.name not in todo:
                continue
            kube = objects_port(ctx)
            res = apply_one(kube, framework.render(r.addon, cfg, bom, with_secrets=True, existing=kube.get_secret), wait=True,
                            timeout=TIMEOUT, say=ctx.reporter.progress)
            ctx.reporter.item(r.addon.name, "done")
            done[r.addon.name] = {"objects": res.applied, "pruned": res.pruned, "seconds": round(res.seconds, 1)}
        return {"applied": done}
