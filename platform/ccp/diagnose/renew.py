"""ccp certs renew: kubeadm renews every certificate on each control plane in turn, the static pods
restart to load them, and ccp waits for the API through the VIP before the next control plane.

Works on a cluster whose certificates expired while it was off: kubeadm renews from the CA on the
node's disk, and nothing here needs the API until the restart. A run stopped half-way is safe to
repeat: the manifests a previous run parked are put back first."""

from __future__ import annotations

import shlex
import time

from ccp.errors import RemoteError

MANIFESTS, PARKED = "/etc/kubernetes/manifests", "/etc/kubernetes/ccp-parked-manifests"


def restart_script(pause: int, manifests: str = MANIFESTS, parked: str = PARKED) -> str:
    """Move the static pod manifests away and back: the kubelet stops the pods, then starts them with
    the renewed certificates (kubeadm's documented way). Idempotent across an interrupted run."""
    return (f"mkdir -p {parked}; "
            f"for f in {parked}/*.yaml; do [ -f \"$f\" ] && mv \"$f\" {manifests}/; done; "   # an earlier run stopped here
            f"mv {manifests}/*.yaml {parked}/ && sleep {pause} && mv {parked}/*.yaml {manifests}/ && rmdir {parked}")


def wait_script(endpoint: str, timeout: int, interval: int = 5) -> str:
    tries = max(1, timeout // interval)
    url = shlex.quote(f"https://{endpoint}/readyz")
    return (f"for i in $(seq 1 {tries}); do curl -ksf --max-time 5 {url} >/dev/null && exit 0; sleep {interval}; done; "
            f"echo 'the API did not answer through {endpoint} within {timeout}s' >&2; exit 1")


def renew(ctx, *, pause: int = 20, timeout: int = 300, say=lambda text: None) -> list[dict]:
    from ccp.cluster.facts import api_endpoint
    from ccp.config import inventory

    ssh = ctx.ssh()
    endpoint = api_endpoint(ctx)
    control_planes = [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP]
    done = []
    for t in ctx.targets(control_planes):
        t0 = time.monotonic()
        say(f"{t.name}: kubeadm certs renew all")
        r = ssh.call(ssh.run(t, "kubeadm certs renew all", sudo=True, check=False, timeout=300))
        if not r.ok:
            raise RemoteError(f"{t.name}: kubeadm certs renew all failed (exit {r.exit_status})",
                              "read kubeadm's message above; the control planes before it are renewed and running",
                              (r.stderr or r.stdout).splitlines()[-5:])
        say(f"{t.name}: restarting the static pods")
        r = ssh.call(ssh.run(t, restart_script(pause), sudo=True, check=False, timeout=pause + 120))
        if not r.ok:
            raise RemoteError(f"{t.name}: the static pods could not be restarted (exit {r.exit_status})",
                              f"check {MANIFESTS} and {PARKED} on {t.name}; rerun `ccp certs renew` to finish",
                              (r.stderr or r.stdout).splitlines()[-5:])
        say(f"{t.name}: waiting for the API through {endpoint}")
        r = ssh.call(ssh.run(t, wait_script(endpoint, timeout), check=False, timeout=timeout + 60))
        if not r.ok:
            raise RemoteError(f"{t.name}: renewed, but the API did not come back through {endpoint} within {timeout}s",
                              f"look at the API server on {t.name} (crictl ps -a; /var/log/pods); the next control planes "
                              "were not touched, so the cluster keeps quorum", (r.stderr or r.stdout).splitlines()[-5:])
        done.append({"node": t.name, "seconds": round(time.monotonic() - t0, 1)})
    return done
