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


def back_script(endpoint: str, timeout: int, interval: int = 2, pki: str = "/etc/kubernetes/pki") -> str:
    """Run on the control plane just restarted: wait until its own API server and etcd serve the renewed
    certificates (the proof that their static pods restarted with them), its API server answers /readyz
    (etcd included), and the API answers through ``endpoint``. Through the VIP alone is no proof: the other
    control planes answer there at once (found on real nodes: the next control plane went down while this
    one's API server was still starting)."""
    vip = shlex.quote(f"https://{endpoint}/readyz")
    return (f"end=$(( $(date +%s) + {timeout} )); "
            "served() { echo | timeout 5 openssl s_client -connect \"$1\" 2>/dev/null | openssl x509 -noout -enddate 2>/dev/null; }; "
            "while :; do "
            f"api=$(served 127.0.0.1:6443); etcd=$(served 127.0.0.1:2379); "
            f"want_api=$(openssl x509 -noout -enddate -in {pki}/apiserver.crt); "
            f"want_etcd=$(openssl x509 -noout -enddate -in {pki}/etcd/server.crt); "
            "ready=no; curl -ksf --max-time 5 https://127.0.0.1:6443/readyz >/dev/null && ready=yes; "
            f"vip=no; curl -ksf --max-time 5 {vip} >/dev/null && vip=yes; "
            '[ -n "$api" ] && [ "$api" = "$want_api" ] && [ "$etcd" = "$want_etcd" ] && [ $ready = yes ] && [ $vip = yes ] && exit 0; '
            f"[ $(date +%s) -ge $end ] && break; sleep {interval}; done; "
            f"echo \"after {timeout}s: its API server serves ${{api:-nothing}} (renewed: $want_api), etcd ${{etcd:-nothing}} "
            f"(renewed: $want_etcd), its /readyz: $ready, through {endpoint}: $vip\" >&2; exit 1")
