"""ccp certs renew: kubeadm renews every certificate on each control plane in turn, the static pods
restart to load them, and ccp waits until that control plane's own API server and etcd serve the renewed
certificates and the API answers through the VIP before it touches the next control plane.

Works on a cluster whose certificates expired while it was off: kubeadm renews from the CA on the
node's disk, and nothing here needs the API until the restart. A run stopped half-way is safe to
repeat: the manifests a previous run parked are put back first."""

from __future__ import annotations

import time

from ccp.errors import RemoteError
from ccp.remote.static_pods import MANIFESTS, PARKED, back_script, lock_busy, locked, restart_script


def renew(ctx, *, pause: int = 3, timeout: int = 300, say=lambda text: None) -> list[dict]:
    from ccp.cluster.facts import api_endpoint
    from ccp.config import inventory

    ssh = ctx.ssh()
    endpoint = api_endpoint(ctx)
    control_planes = [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP]
    done = []
    for t in ctx.targets(control_planes):
        t0 = time.monotonic()
        say(f"{t.name}: kubeadm certs renew all")
        r = ssh.call(ssh.run(t, locked("kubeadm certs renew all"), sudo=True, check=False, timeout=300 + 900))
        if lock_busy(t.name, r):
            raise lock_busy(t.name, r)
        if not r.ok:
            raise RemoteError(f"{t.name}: kubeadm certs renew all failed (exit {r.exit_status})",
                              "read kubeadm's message above; the control planes before it are renewed and running",
                              (r.stderr or r.stdout).splitlines()[-5:])
        say(f"{t.name}: restarting the static pods")
        r = ssh.call(ssh.run(t, locked(restart_script(pause)), sudo=True, check=False, timeout=pause + 120 + 900))
        if lock_busy(t.name, r):
            raise lock_busy(t.name, r)
        if not r.ok:
            raise RemoteError(f"{t.name}: the static pods could not be restarted (exit {r.exit_status})",
                              f"check {MANIFESTS} and {PARKED} on {t.name}; rerun `ccp certs renew` to finish",
                              (r.stderr or r.stdout).splitlines()[-5:])
        say(f"{t.name}: waiting for its API server and etcd to serve the new certificates, then the API through {endpoint}")
        r = ssh.call(ssh.run(t, back_script(endpoint, timeout), sudo=True, check=False, timeout=timeout + 60))
        if not r.ok:
            raise RemoteError(f"{t.name}: renewed, but its API server and etcd did not come back with the new certificates "
                              f"(and the API through {endpoint}) within {timeout}s",
                              f"look at the static pods on {t.name} (/var/log/pods, journalctl -u kubelet); the next control "
                              "planes were not touched, so the cluster keeps quorum; then rerun `ccp certs renew`",
                              (r.stderr or r.stdout).splitlines()[-5:])
        done.append({"node": t.name, "seconds": round(time.monotonic() - t0, 1)})
    return done
