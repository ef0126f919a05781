"""Node-side shell for a control plane's static pods, shared by `ccp certs renew` (run over SSH), the
certificate renewal timer's script (rendered, run by systemd) and the upgrade's API wait: the same
restart and the same wait, written once.

One lock per control plane, LOCK, is held by whatever changes its static pods: the renewal timer for its whole
run, and ccp around each such step (kubeadm upgrade, certs renew and the restart after it, an API server
restart of spec.security or a key rotation, the restore's stop). Without it the timer, parking every
manifest to restart the pods, could put back an old kube-apiserver manifest over the one ccp just wrote, or
restart etcd in the middle of a `kubeadm upgrade`."""

from __future__ import annotations

import shlex

MANIFESTS, PARKED = "/etc/kubernetes/manifests", "/etc/kubernetes/ccp-parked-manifests"
LOCK = "/run/ccp-control-plane.lock"
LOCK_BUSY = 75          # flock's exit code when LOCK stayed held for the whole wait (EX_TEMPFAIL)
LOCK_WAIT = 900         # a renewal takes a few minutes; ccp waits that long for the timer, and the timer for ccp
HURRY = 5               # s after its manifest left before a kube-apiserver the kubelet is stopping is SIGKILLed
STATIC = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def locked(script: str, wait: int = LOCK_WAIT) -> str:
    """``script`` run by sh holding this control plane's LOCK, waiting up to ``wait`` s for it; exit LOCK_BUSY
    when it stayed held."""
    return f"flock -w {int(wait)} -E {LOCK_BUSY} {LOCK} sh -c {shlex.quote(script)}"


def lock_busy(node: str, result, wait: int = LOCK_WAIT):
    """A RemoteError when ``result`` (of a locked() command) says the lock stayed held, else None."""
    from ccp.errors import RemoteError

    if getattr(result, "exit_status", None) != LOCK_BUSY:
        return None
    return RemoteError(f"{node}: another change to its static pods held {LOCK} for {wait}s (its certificate renewal "
                       "timer, or another ccp run), so ccp changed nothing there",
                       f"see what holds it on {node} (journalctl -u ccp-cert-renew; ps -ef | grep -e kubeadm -e flock); "
                       "when it has ended, run the same ccp command again (with --resume where it has one)")


# Shell: the local API server no longer says it is ready (the kubelet has begun stopping it)
_NOT_READY = "! curl -ksf --max-time 2 https://127.0.0.1:6443/readyz >/dev/null 2>&1"


def _kill(var: str) -> str:
    """Shell: SIGKILL the containers whose IDs are in $``var`` (ctr is on every containerd node)."""
    return f"for c in ${var}; do ctr -n k8s.io tasks kill -s SIGKILL \"$c\" >/dev/null 2>&1 || true; done; "


def gone_script(names: tuple[str, ...] | list[str], timeout: int, hurry: int = HURRY) -> str:
    """Shell that waits, once their manifests were moved away, until no container of the static pods ``names``
    runs, up to ``timeout`` s; sets gone=1 when none does.

    kube-apiserver does not exit on the kubelet's SIGTERM while clients hold watches open: it waits for them
    up to its own shutdown timeout (60 s), so the kubelet SIGKILLs it only when the pod's grace period (30 s)
    ends. Measured on real nodes: 30 of the 36 s of every API server restart. Its listener is closed by then
    and its /readyz fails, so clients are on the other API servers already; what the wait keeps open are the
    watches, which the SIGKILL ends as well. So once its own /readyz no longer says ok (the kubelet has begun
    stopping it) and ``hurry`` s have passed since the manifest left, what still runs of kube-apiserver is
    SIGKILLed here (ctr, on every containerd node). Should the kubelet not have seen the manifest leave yet,
    it would start the container again and stop it when it does: no worse than waiting."""
    from ccp.remote.etcd import RUNNING

    listed = " ".join(shlex.quote(n) for n in names)
    return (f"running() {{ {RUNNING} \"$@\"; }}; gone=; i=0; while [ $i -lt {int(timeout)} ]; do i=$((i+1)); "
            f"[ -z \"$(running {listed})\" ] && {{ gone=1; break; }}; "
            f"if [ $i -gt {int(hurry)} ]; then api=$(running kube-apiserver); "
            f"if [ -n \"$api\" ] && {_NOT_READY}; then {_kill('api')}fi; fi; "
            "sleep 1; done; ")


def hurried(cmd: str, hurry: int = HURRY) -> str:
    """``cmd`` (a `kubeadm upgrade`, which writes the static pod manifests anew and waits for each pod to
    restart) with its old kube-apiserver hurried as in gone_script: the containers that run when the
    manifest changes are the old API server's; once ``hurry`` s have passed since and its /readyz fails (the
    kubelet is stopping it), they are SIGKILLed rather than left to the kubelet's 30 s grace period. The
    watch ends with ``cmd``, whose exit status is the command's."""
    from ccp.remote.etcd import RUNNING

    m = f"{MANIFESTS}/kube-apiserver.yaml"
    return (f"was=$(cksum < {m} 2>/dev/null); {cmd} & k=$!; running() {{ {RUNNING} \"$@\"; }}; old=; n=0; "
            "while kill -0 $k 2>/dev/null; do sleep 1; "
            f"now=$(cksum < {m} 2>/dev/null); "
            "if [ -z \"$old\" ]; then [ \"$now\" = \"$was\" ] || { old=$(running kube-apiserver); n=0; was=$now; }; "
            f"else n=$((n+1)); if [ $n -ge {int(hurry)} ] && {_NOT_READY}; then {_kill('old')}old=; fi; fi; "
            "done; wait $k")


def restart_script(pause: int, manifests: str = MANIFESTS, parked: str = PARKED, timeout: int = 120) -> str:
    """Move the static pod manifests away and back: the kubelet stops the pods, then starts them with
    the renewed certificates (kubeadm's documented way). Back ``pause`` s after they left (so the kubelet
    has seen them go even where a pod was not running) and once none of their containers runs — up to
    ``timeout`` s; after that they are put back all the same, and the caller's wait for the renewed
    certificates being served says what did not restart. Idempotent across an interrupted run."""
    return (f"mkdir -p {parked}; "
            f"for f in {parked}/*.yaml; do [ -f \"$f\" ] && mv \"$f\" {manifests}/; done; "   # an earlier run stopped here
            f"mv {manifests}/*.yaml {parked}/ && sleep {int(pause)} && {{ {gone_script(STATIC, timeout)}"
            f"[ -n \"$gone\" ] || echo \"static pods still run {int(timeout)} s after their manifests were moved away\" >&2; }} "
            f"&& mv {parked}/*.yaml {manifests}/ && rmdir {parked}")


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
