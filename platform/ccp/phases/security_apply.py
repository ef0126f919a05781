"""security/apply: spec.security on a cluster that runs already. kubeadm init and join set it up on a fresh
cluster; when cluster.yaml's spec.security changes later (encryption on or off, another resource or provider,
the audit policy or its limits, the Pod Security levels), this phase moves every control plane to it, one at a
time: the files uploaded (0600), the API server's static pod manifest edited (ccp.cluster.apiserver says why
that and not kubeadm), the API server restarted, its own /readyz and the API through the VIP awaited before
the next. A change of encryption goes through the stages of ccp.cluster.encryption (every API server able to
read before any writes the new way; every object rewritten before what it was stored with goes); last, the
kubeadm-config ConfigMap gets the same flags, so a later `kubeadm upgrade` keeps them.

The change is recorded in the journal before the first control plane is touched (the stages by the names of
their keys, never a key) and each control plane's pass the moment it is over: an interrupted run goes on with
what is left, and restarts a control plane it cannot tell was restarted. The plan is empty when every control
plane and kubeadm-config already say what cluster.yaml says."""

from __future__ import annotations

from ccp.cluster import apiserver, keyring, reencrypt
from ccp.cluster import security as cluster_security
from ccp.cluster.facts import acting_first, api_endpoint, by_role, initialized
from ccp.cluster.security_change import (CHANGE, cluster_keys, kubeadm_config, node_pass, probe_all, remember,
                                         replace_kubeadm_config, run_pass)
from ccp.cluster.security_plan import Change, encrypts_at_end, kubeadm_differs, part, plan_change
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


class SecurityApply(Phase):
    name = "security/apply"
    layer = "cluster"
    summary = "spec.security changed on a running cluster: files, flags, encryption, one control plane at a time"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"security": ctx.spec_dump()["spec"]["security"], "controlPlanes": by_role(ctx, inventory.ROLE_CP)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        change = plan_change(ctx)
        return change.actions if change else []

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        change = plan_change(ctx)
        if change is None or not change.actions:
            return {"changed": False}
        if change.new_key:
            cluster_security.ensure_key(ctx)
        ssh = ctx.ssh()
        remember(ctx, probe_all(ctx, change.members))
        if not change.continuing:
            ctx.record_part(CHANGE, {"id": change.id, "stages": change.stages, "rewrite": change.rewrite,
                                     "dropped": change.dropped, "finished": False})
        endpoint = api_endpoint(ctx)
        (acting,) = ctx.targets([acting_first(ctx)])
        for i, stage in enumerate(change.stages):
            if stage["name"] == "final":
                self._rewrite(ctx, change, acting)
            for t in ctx.targets(stage["nodes"]):
                done = part(change, f"{i}-{stage['name']}/{t.name}")
                if ctx.outputs.get(done):
                    continue
                st = ssh.call(apiserver.probe(ssh, t))
                keys = cluster_keys(ctx, {t.name: st})
                p = node_pass(ctx, t.name, st, stage["shape"], keys, settings=True)
                ctx.reporter.item(t.name, f"{stage['name']}: " + ("; ".join(p.why) or "restart"))
                if change.continuing and not p.restarts:   # cut short here before: restarted, as there is no telling
                    ssh.call(apiserver.roll(ssh, t, endpoint, upload={}, remove=p.remove, say=ctx.reporter.progress))
                else:
                    ssh.call(run_pass(ctx, ssh, t, p, endpoint, ctx.reporter.progress))
                ctx.record_part(done, {"stage": stage["name"]})
        self._rewrite(ctx, change, acting)
        if not ctx.outputs.get(part(change, "kubeadm-config")):
            cm = kubeadm_config(ctx, acting)
            if kubeadm_differs(ctx, change, cm):
                want = apiserver.wanted(ctx.config.spec.security, encrypts_at_end(ctx, change))
                replace_kubeadm_config(ctx, acting, cm, apiserver.edit_cluster_configuration(cm["data"]["ClusterConfiguration"], want))
            ctx.record_part(part(change, "kubeadm-config"), {"updated": True})
        forgotten = self._forget(ctx, change)
        ctx.record_part(CHANGE, {"id": change.id, "stages": change.stages, "rewrite": change.rewrite,
                                 "dropped": change.dropped, "finished": True})
        return {"change": change.id, "stages": [s["name"] for s in change.stages], "forgotten": forgotten}

    def _forget(self, ctx: ClusterContext, change: Change) -> list[str]:
        """Keys the change dropped that no control plane holds any more leave <state>/secrets (never the one the
        cluster encrypts with, kept for when encryption is turned on again)."""
        names = [p.split(":", 1)[1] for p in change.dropped if ":" in p]
        if not names:
            return []
        held = {k for st in probe_all(ctx, initialized(ctx)).values() for k in st.file.keys}
        primary = keyring.primary(ctx.state_dir)
        return keyring.forget(ctx.state_dir, [n for n in names if n not in held and (primary is None or n != primary[0])])

    def _rewrite(self, ctx: ClusterContext, change: Change, acting) -> None:
        done = part(change, "rewrite")
        if not change.rewrite or ctx.outputs.get(done):
            return
        out = reencrypt.rewrite(ctx.ssh(), acting, change.rewrite, change.dropped, say=ctx.reporter.progress)
        ctx.record_part(done, out)
