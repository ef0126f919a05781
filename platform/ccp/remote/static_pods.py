"""Node-side shell for a control plane's static pods, shared by `ccp certs renew` (run over SSH), the
certificate renewal timer's script (rendered, run by systemd) and the upgrade's API wait: the same
restart and the same wait, written once."""

from __future__ import annotations

import shlex

MANIFESTS, PARKED = "/etc/kubernetes/manifests", "/etc/kubernetes/ccp-parked-manifests"


def restart_script(pause: int, manifests: str = MANIFESTS, parked: str = PARKED) -> str:
    """Move the static pod manifests away and back: the kubelet stops the pods, then starts them with
    the renewed certificates (kubeadm's documented way). Idempotent across an interrupted run."""
    return (f"mkdir -p {parked}; "
            f"for f in {parked}/*.yaml; do [ -f \"$f\" ] && mv \"$f\" {manifests}/; done; "   # an earlier run stopped here
            f"mv {manifests}/*.yaml {parked}/ && sleep {pause} && mv {parked}/*.yaml {manifests}/ && rmdir {parked}")


def wait_script(endpoint: str, timeout: int, interval: int = 5) -> str:
    """Poll https://ENDPOINT/readyz (anonymous: kubeadm's RBAC lets anyone read the health endpoints) until it
    answers, or say which endpoint did not within ``timeout`` and exit 1."""
    tries = max(1, timeout // interval)
    url = shlex.quote(f"https://{endpoint}/readyz")
    return (f"for i in $(seq 1 {tries}); do curl -ksf --max-time 5 {url} >/dev/null && exit 0; sleep {interval}; done; "
            f"echo 'the API did not answer through {endpoint} within {timeout}s' >&2; exit 1")
