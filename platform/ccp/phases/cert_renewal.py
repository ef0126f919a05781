"""certs/auto-renew: with spec.security.certificates.autoRenew (on by default), a systemd timer on every control
plane checks kubeadm's certificates once a day and renews them when fewer than renewBeforeDays are left (the
script: templates/scripts/cert-renew.sh.j2). Each control plane checks staggerMinutes after the one before it,
and a control plane renews only while every other one's API server is ready: one restart at a time. Files
are compared by hash on the host, so a rerun changes nothing; autoRenew: false removes the timer."""

from __future__ import annotations

from ccp import render_security
from ccp.cluster import timers
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


def control_planes(ctx: ClusterContext) -> list[str]:
    return [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP]


def _timer(ctx: ClusterContext) -> timers.Timer:
    c = ctx.config.spec.security.certificates
    return timers.Timer(render_security.RENEW_UNIT, render_security.RENEW_FILES, "certificate renewal timer", c.autoRenew,
                        f"renew below {c.renewBeforeDays} days left, checked daily from {c.dailyAt}, "
                        f"{c.staggerMinutes} min apart",
                        "spec.security.certificates.autoRenew is false")


class CertAutoRenew(Phase):
    name = "certs/auto-renew"
    layer = "hosts"
    summary = "a timer on every control plane renews kubeadm's certificates before they expire, one at a time"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"certificates": ctx.config.spec.security.certificates.model_dump(), "controlPlanes": control_planes(ctx)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return timers.plan(ctx, _timer(ctx), control_planes(ctx))

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        c = ctx.config.spec.security.certificates
        at = {name: c.check_time(i) for i, name in enumerate(control_planes(ctx))}
        hosts = timers.apply(ctx, _timer(ctx), actions, describe=lambda node: f"daily at {at[node]}, "
                                                                             f"renews below {c.renewBeforeDays} days")
        return {"autoRenew": c.autoRenew, "renewBeforeDays": c.renewBeforeDays, "checkTimes": at, "hosts": hosts}
