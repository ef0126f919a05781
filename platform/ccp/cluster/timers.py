"""A ccp systemd timer on some hosts, as the host phases that install one share it (backup/schedule: the etcd
snapshots; certs/auto-renew: the certificate renewal): its script and units rendered per node, compared by
hash on the host so a rerun changes nothing, enabled; or disabled and removed when the config turns it off."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ccp.cluster.hostwork import before_provisioning, new_machines, remote_digests, rendered, sha256
from ccp.context import ClusterContext
from ccp.engine.phase import Action
from ccp.errors import ConfigError


@dataclass
class Timer:
    unit: str                             # ccp-etcd-backup: its .timer and .service
    files: list[tuple[str, str, int]]     # (rendered path with {n} for the node, path on the host, mode)
    what: str                             # "backup timer", as the plan names it: "<what> on <node>"
    wanted: bool                          # the config asks for it (else: removed where found)
    settings: str                         # what the plan says it installs: "daily, keep 7"
    removed_because: str                  # why the plan removes it
    calendar: str | None = None           # an OnCalendar expression from the config, judged by the host's systemd first
    calendar_field: str = ""              # where it is in cluster.yaml, for the error

    def target(self, node: str) -> str:
        return f"{self.what} on {node}"


def plan(ctx: ClusterContext, timer: Timer, names: list[str]) -> list[Action]:
    """Install where a file differs or the timer is not enabled; remove where found and not wanted."""
    early = before_provisioning(ctx, f"install the {timer.what} ({timer.settings}) on", names) if timer.wanted else None
    if early is not None or not ctx.provisioned():
        return early or []
    names, later = new_machines(ctx, names, "install", timer.target("{}"))
    later = later if timer.wanted else []   # a machine not made yet has no timer to remove
    ssh = ctx.ssh()

    async def probe(t):
        digests = await remote_digests(ssh, t, [dest for _, dest, _ in timer.files])
        enabled = (await ssh.run(t, f"systemctl is-enabled {timer.unit}.timer", check=False)).stdout.strip() == "enabled"
        if not timer.wanted:
            return "remove" if digests or enabled else None
        changed = [dest for src, dest, _ in timer.files if digests.get(dest) != sha256(rendered(ctx, src.format(n=t.name)))]
        return ("install", changed, enabled) if changed or not enabled else None

    fan = ssh.call(ssh.each(ctx.targets(names), probe))
    fan.raise_if_failed(f"probing the {timer.what}s")
    actions = later
    for name, found in fan.results.items():
        if found == "remove":
            actions.append(Action("remove", timer.target(name), timer.removed_because))
        elif found:
            _, changed, enabled = found
            why = f"{len(changed)} file(s) changed" if changed else "timer not enabled"
            actions.append(Action("install", timer.target(name), f"{timer.settings}: {why}"))
    return actions


def apply(ctx: ClusterContext, timer: Timer, actions: list[Action], describe=lambda node: "") -> list[str]:
    """Do the plan's actions; ``describe(node)`` is what the progress line says of an installed timer. The
    hosts done, sorted."""
    ssh = ctx.ssh()
    todo = {a.target.rsplit(" ", 1)[-1]: a.verb for a in actions}

    async def one(t):
        if todo[t.name] == "remove":
            await ssh.run(t, f"systemctl disable --now {timer.unit}.timer 2>/dev/null || true; rm -f "
                             + " ".join(dest for _, dest, _ in timer.files) + "; systemctl daemon-reload", sudo=True)
            ctx.reporter.item(t.name, f"{timer.what} removed")
            return
        if timer.calendar is not None:
            check = await ssh.run(t, f"systemd-analyze calendar {shlex.quote(timer.calendar)}", check=False)
            if check.exit_status != 0:
                raise ConfigError(f"{timer.calendar_field} {timer.calendar!r} is not a calendar expression systemd on {t.name} accepts",
                                  "use one like daily, hourly, Mon *-*-* 03:00:00 (man systemd.time)",
                                  (check.stderr or check.stdout).strip().splitlines()[-2:])
        await ssh.upload(t, {dest: (rendered(ctx, src.format(n=t.name)), mode) for src, dest, mode in timer.files})
        await ssh.run(t, f"systemctl daemon-reload && systemctl enable --now {timer.unit}.timer", sudo=True)
        ctx.reporter.item(t.name, f"{timer.what}: {describe(t.name)}")

    fan = ssh.call(ssh.each(ctx.targets(list(todo)), one))
    config_errors = [e for e in fan.failures.values() if isinstance(e, ConfigError)]
    if config_errors:   # the same expression fails on every node: say it once, as the config mistake it is
        raise config_errors[0]
    fan.raise_if_failed(f"setting up the {timer.what}s")
    return sorted(todo)
