"""backup/schedule: with spec.backup.schedule, every control plane takes its own etcd snapshot on a
systemd timer and keeps the newest spec.backup.keep (script and units rendered per node). Files are
compared by hash on the host, so a rerun changes nothing; the calendar expression is checked with
the node's own `systemd-analyze calendar` before the timer is enabled. Unsetting the schedule
disables and removes the timer and script (the snapshots already taken stay)."""

from __future__ import annotations

from ccp.cluster import timers
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase

UNIT = "ccp-etcd-backup"
FILES = [("scripts/{n}/etcd-backup.sh", "/usr/local/sbin/ccp-etcd-backup", 0o700),
         ("systemd/{n}/ccp-etcd-backup.service", f"/etc/systemd/system/{UNIT}.service", 0o644),
         ("systemd/{n}/ccp-etcd-backup.timer", f"/etc/systemd/system/{UNIT}.timer", 0o644)]


def control_planes(ctx: ClusterContext) -> list[str]:
    return [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP]


def _timer(ctx: ClusterContext) -> timers.Timer:
    b = ctx.config.spec.backup
    return timers.Timer(UNIT, FILES, "backup timer", bool(b.schedule), f"{b.schedule}, keep {b.keep}",
                        "spec.backup.schedule is unset (snapshots stay)", calendar=b.schedule,
                        calendar_field="spec.backup.schedule")


class BackupSchedule(Phase):
    name = "backup/schedule"
    layer = "hosts"
    summary = "scheduled etcd snapshots on every control plane (spec.backup.schedule), newest N kept"

    def inputs(self, ctx: ClusterContext) -> dict:
        b = ctx.config.spec.backup
        return {"schedule": b.schedule, "keep": b.keep, "controlPlanes": control_planes(ctx)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return timers.plan(ctx, _timer(ctx), control_planes(ctx))

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        schedule = ctx.config.spec.backup.schedule
        hosts = timers.apply(ctx, _timer(ctx), actions, describe=lambda node: schedule)
        return {"schedule": schedule, "hosts": hosts}
