"""Taking one API server out of the NGINX load balancers while ccp changes its control plane.

`kubeadm upgrade` restarts a control plane's etcd and then its API server. Between the two, that API server
accepts connections it cannot serve (kubeadm points it at its local etcd only), and the clients already held
on it through NGINX stay there: found on real nodes, the kubelets of two workers posted no status for over 40 s
while the third control plane was upgraded, so the node controller marked them NotReady and every pod of a
Deployment guarded by a PodDisruptionBudget went unready at once. Held out first, the API server takes no new
connection, and NGINX's old workers close the ones it had (worker_shutdown_timeout): the clients reconnect to
the other API servers before anything on that control plane stops.

The load balancers' health check (templates/nginx/apiserver-health.sh.j2) marks the addresses listed in HELD
down whatever their /readyz says; ccp writes the list, waits until the check has marked the address down (and
NGINX reloaded), then waits for the old workers to let go. Releasing removes the list: the check marks the
API server up once its /readyz answers. Holding is a precaution, never a reason to stop: a load balancer that
cannot hold (no health check yet, the other API servers failing: never all are marked down) is named, and the
change goes on as it would without it.
"""

from __future__ import annotations

import shlex

HELD = "/etc/nginx/ccp-apiservers-held"
SERVERS = "/etc/nginx/ccp-apiservers.conf"
LET_GO = 11          # seconds: nginx.conf's worker_shutdown_timeout (10 s), and a second for the reload
NO_CHECK = 3         # hold_script's exit code when the load balancer has no health check


def hold_script(address: str, timeout: int = 20) -> str:
    """On a load balancer: list ``address`` as held, wait until the health check marks it down."""
    a = shlex.quote(address)
    return (f"[ -f {SERVERS} ] || {{ echo 'no {SERVERS}: this load balancer has no API server health check yet "
            f"(ccp apply installs it)' >&2; exit {NO_CHECK}; }}; "
            f"echo {a} > {HELD}.tmp && mv -f {HELD}.tmp {HELD}; "
            f"for i in $(seq 1 {timeout}); do grep -F \"server {address}:6443 \" {SERVERS} | grep -q ' down;' && exit 0; "
            "sleep 1; done; "
            f"echo 'its health check did not mark {address} down within {timeout}s (it never marks every API server "
            "down: are the others failing?)' >&2; exit 1")


RELEASE = f"rm -f {HELD}"


def load_balancers(ctx) -> list[str]:
    from ccp.config import inventory

    return [n.name for n in ctx.nodes if n.role == inventory.ROLE_LB]


def hold(ctx, ssh, node: str, address: str, *, say=lambda text: None, warn=None, sleep=None) -> list[str]:
    """Hold ``node``'s API server (at ``address``) out of every load balancer; -> the load balancers that hold it.
    Nothing to do without NGINX load balancers, or with a single control plane (nowhere else to go). ``say``:
    progress; ``warn``: what the operator must see (a load balancer that cannot hold it)."""
    import time

    from ccp.config import inventory

    lbs = load_balancers(ctx)
    if not lbs or sum(n.role == inventory.ROLE_CP for n in ctx.nodes) < 2:
        return []
    say(f"{node}: taking its API server out of the load balancers ({', '.join(lbs)})")

    async def one(t):
        r = await ssh.run(t, hold_script(address), sudo=True, check=False, timeout=60)
        return r

    fan = ssh.call(ssh.each(ctx.targets(lbs), one))
    holding = []
    for lb in lbs:
        r = fan.results.get(lb)
        if r is not None and r.ok:
            holding.append(lb)
        else:
            why = (r.stderr or r.stdout).strip().splitlines()[-1:] if r is not None else [str(fan.failures.get(lb))]
            (warn or say)(f"{lb}: cannot hold {node}'s API server out of its pool ({why[0] if why else 'no answer'}); "
                          "going on without")
    if holding:
        (sleep or time.sleep)(LET_GO)   # the old NGINX workers close the connections they still carry
    return holding


def release(ctx, ssh, holding: list[str], *, warn=lambda text: None) -> None:
    """Remove the held list on ``holding``: the health check marks the API server up once its /readyz answers.
    A load balancer that cannot be reached keeps it down until its list is removed: said, not raised."""
    if not holding:
        return

    async def one(t):
        await ssh.run(t, RELEASE, sudo=True, timeout=60)
    fan = ssh.call(ssh.each(ctx.targets(holding), one))
    for lb, exc in fan.failures.items():
        warn(f"{lb}: could not release the held API server ({getattr(exc, 'message', exc)}): remove {HELD} there "
             "(it expires after 30 minutes)")
