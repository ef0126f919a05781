"""backup/schedule: with spec.backup.schedule, every control plane takes its own etcd snapshot on a
systemd timer and keeps the newest spec.backup.keep (script and units rendered per node). Files are
compared by hash on the host, so a rerun changes nothing; the calendar expression is checked with
the node's own `systemd-analyze calendar` before the timer is enabled. Unsetting the schedule
disables and removes the timer and script (the snapshots already taken stay)."""

from __future__ import annotations

import shlex

from ccp.cluster.hostwork import before_provisioning, new_machines, remote_digests, rendered, sha256
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError

UNIT = "ccp-etcd-backup"
FILES = [("scripts/{n}/etcd-backup.sh", "/usr/local/sbin/ccp-etcd-backup", 0o700),
         ("systemd/{n}/ccp-etcd-backup.service", f"/etc/systemd/system/{UNIT}.service", 0o644),
         ("systemd/{n}/ccp-etcd-backup.timer", f"/etc/systemd/system/{UNIT}.timer", 0o644)]


def control_planes(ctx: ClusterContext) -> list[str]:
    return [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP]


class BackupSchedule(Phase):
    name = "backup/schedule"
    layer = "hosts"
    summary = "scheduled etcd snapshots on every control plane (spec.backup.schedule), newest N kept"

    def inputs(self, ctx: ClusterContext) -> dict:
        b = ctx.config.spec.backup
        return {"schedule": b.schedule, "keep": b.keep, "controlPlanes": control_planes(ctx)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        names = control_planes(ctx)
        schedule = ctx.config.spec.backup.schedule
        early = before_provisioning(ctx, "schedule backups on", names) if schedule else None
        if early is not None or not ctx.provisioned():
            return early or []
        names, later = new_machines(ctx, names, "install", "backup timer on {}")
        later = later if schedule else []   # a machine not made yet has no timer to remove
        ssh = ctx.ssh()

        async def probe(t):
            digests = await remote_digests(ssh, t, [dest for _, dest, _ in FILES])
            enabled = (await ssh.run(t, f"systemctl is-enabled {UNIT}.timer", check=False)).stdout.strip() == "enabled"
            if not schedule:
                return "remove" if digests or enabled else None
            changed = [dest for src, dest, _ in FILES if digests.get(dest) != sha256(rendered(ctx, src.format(n=t.name)))]
            return ("install", changed, enabled) if changed or not enabled else None

        fan = ssh.call(ssh.each(ctx.targets(names), probe))
        fan.raise_if_failed("probing the backup timers")
        actions = later
        for name, found in fan.results.items():
            if found == "remove":
                actions.append(Action("remove", f"backup timer on {name}", "spec.backup.schedule is unset (snapshots stay)"))
            elif found:
                _, changed, enabled = found
                why = f"{len(changed)} file(s) changed" if changed else "timer not enabled"
                actions.append(Action("install", f"backup timer on {name}", f"{schedule}, keep {ctx.config.spec.backup.keep}: {why}"))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        schedule = ctx.config.spec.backup.schedule
        todo = {a.target.rsplit(" ", 1)[-1]: a.verb for a in actions}

        async def one(t):
            if todo[t.name] == "remove":
                await ssh.run(t, f"systemctl disable --now {UNIT}.timer 2>/dev/null || true; rm -f "
                                 + " ".join(dest for _, dest, _ in FILES) + "; systemctl daemon-reload", sudo=True)
                ctx.reporter.item(t.name, "backup timer removed")
                return
            check = await ssh.run(t, f"systemd-analyze calendar {shlex.quote(schedule)}", check=False)
            if check.exit_status != 0:
                raise ConfigError(f"spec.backup.schedule {schedule!r} is not a calendar expression systemd on {t.name} accepts",
                                  "use one like daily, hourly, Mon *-*-* 03:00:00 (man systemd.time)",
                                  (check.stderr or check.stdout).strip().splitlines()[-2:])
            await ssh.upload(t, {dest: (rendered(ctx, src.format(n=t.name)), mode) for src, dest, mode in FILES})
            await ssh.run(t, f"systemctl daemon-reload && systemctl enable --now {UNIT}.timer", sudo=True)
            ctx.reporter.item(t.name, f"backup timer: {schedule}")

        fan = ssh.call(ssh.each(ctx.targets(list(todo)), one))
        config_errors = [e for e in fan.failures.values() if isinstance(e, ConfigError)]
        if config_errors:   # the same expression fails on every node: say it once, as the config mistake it is
            raise config_errors[0]
        fan.raise_if_failed("setting up the backup timers")
        return {"schedule": schedule, "hosts": sorted(todo)}
