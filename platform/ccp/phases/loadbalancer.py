"""loadbalancer/nginx: NGINX (L4 stream to every API server) and keepalived (the VIP) on the
load-balancer nodes — or keepalived alone on the control planes when nginx.count is 0. Files are
compared by hash on the host; only changed ones are uploaded, and only their service restarted."""

from __future__ import annotations

from ccp.cluster.hostwork import REMOTE_DIR, before_provisioning, new_machines, remote_digests, rendered, sha256
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase

FILES = {  # service -> (rendered file, path on the host, mode)
    "nginx": [("nginx/{n}/nginx.conf", "/etc/nginx/nginx.conf", 0o644)],
    # NGINX's active health check of the API servers: it owns /etc/nginx/ccp-apiservers.conf, which nginx.conf
    # includes (so that file is not compared here: a server marked down is not drift)
    "ccp-apiserver-health": [("nginx/{n}/apiserver-health.sh", "/etc/nginx/ccp-apiserver-health.sh", 0o755),
                             ("nginx/{n}/ccp-apiserver-health.service", "/etc/systemd/system/ccp-apiserver-health.service", 0o644)],
    "keepalived": [("keepalived/{n}/keepalived.conf", "/etc/keepalived/keepalived.conf", 0o644),
                   ("keepalived/{n}/check_apiserver.sh", "/etc/keepalived/check_apiserver.sh", 0o700)],
}


def vip_holders(ctx: ClusterContext) -> tuple[list[str], bool]:
    nodes = ctx.nodes
    lbs = [n.name for n in nodes if n.role == inventory.ROLE_LB]
    return (lbs, True) if lbs else ([n.name for n in nodes if n.role == inventory.ROLE_CP], False)


def wanted(ctx: ClusterContext, name: str, with_nginx: bool) -> dict[str, list[tuple[str, str, int]]]:
    out = {}
    for service, files in FILES.items():
        if service in ("nginx", "ccp-apiserver-health") and not with_nginx:
            continue
        out[service] = [(rendered(ctx, src.format(n=name)), dest, mode) for src, dest, mode in files]
    return out


class LoadBalancer(Phase):
    name = "loadbalancer/nginx"
    layer = "hosts"
    summary = "NGINX stream proxy for the API and keepalived holding the VIP"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"holders": vip_holders(ctx)[0], "vip": str(ctx.config.spec.loadBalancer.vip)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        names, with_nginx = vip_holders(ctx)
        early = before_provisioning(ctx, "configure", names)
        if early is not None:
            return early
        names, later = new_machines(ctx, names, "configure", "host {}")
        ssh = ctx.ssh()

        async def probe(t):
            files = wanted(ctx, t.name, with_nginx)
            digests = await remote_digests(ssh, t, [dest for fs in files.values() for _, dest, _ in fs])
            changed = [svc for svc, fs in files.items() if any(digests.get(dest) != sha256(text) for text, dest, _ in fs)]
            active = await ssh.run(t, "systemctl is-active " + " ".join(files), check=False)
            down = [svc for svc, state in zip(files, active.stdout.split()) if state != "active" and svc not in changed]
            return changed, down

        fan = ssh.call(ssh.each(ctx.targets(names), probe))
        fan.raise_if_failed("probing the load balancers")
        actions = later
        for name, (changed, down) in fan.results.items():
            if changed or down:
                why = ", ".join([f"{s} config changed" for s in changed] + [f"{s} not running" for s in down])
                actions.append(Action("configure", f"host {name}", why))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        names, with_nginx = vip_holders(ctx)
        ssh = ctx.ssh()
        todo = [a.target.removeprefix("host ") for a in actions]

        async def configure(t):
            files = wanted(ctx, t.name, with_nginx)
            digests = await remote_digests(ssh, t, [dest for fs in files.values() for _, dest, _ in fs])
            changed = [svc for svc, fs in files.items() if any(digests.get(dest) != sha256(text) for text, dest, _ in fs)]
            upload = {dest: (text, mode) for svc in changed for text, dest, mode in files[svc]}
            upload[f"{REMOTE_DIR}/loadbalancer.sh"] = (rendered(ctx, f"scripts/{t.name}/loadbalancer.sh"), 0o700)
            await ssh.upload(t, upload)
            await ssh.run(t, f"bash {REMOTE_DIR}/loadbalancer.sh '{' '.join(changed)}'", sudo=True)
            ctx.reporter.item(t.name, "done")

        fan = ssh.call(ssh.each(ctx.targets(todo), configure))
        fan.raise_if_failed("configuring the load balancers")
        return {"configured": sorted(fan.results), "vip": str(ctx.config.spec.loadBalancer.vip), "hostKeysPinned": ctx.take_pins()}
