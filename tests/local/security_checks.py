"""Issue 21's certificate renewal and hardening check on the real HA cluster that tests/local/test_cluster.py builds.
Plain functions over its ``Cluster`` (ssh(address, cmd, check), ccp(*args, check), kubectl(*args), nodes(), config),
to be called from test_cluster.py after the validate test, like test_security.py's; pytest collects nothing here.

  renewal_timer_renews_when_forced   on each control plane in turn: the ccp-cert-renew timer is enabled; the service
                                     is started with CCP_RENEW_BEFORE_DAYS above the certificates' lifetime (through
                                     /etc/ccp/cert-renew.env, removed after); it succeeds, every certificate kubeadm
                                     renews gets a later expiry, the journal says so without a key, and the API
                                     answers through the VIP after each. Returns {node: {"before", "after", "vip_misses"}}
                                     (expiry dates by kubeadm's certificate name; /readyz misses through the VIP while
                                     that control plane restarted). The first one starts while ccp's control-plane lock
                                     is held there (as during a kubeadm upgrade): it waits, and renews after. Then
                                     `ccp diagnose --only certs` has nothing failing and sees every timer's last run
                                     succeed.
  kubelet_serving_certificates       every kubelet's serving certificate is the cluster CA's, for its own name and
                                     address only; `kubectl logs` of a pod on a worker works over it; a worker whose
                                     certificate is deleted asks again when its kubelet restarts, and the renewal
                                     timer's daily run on the first control plane approves that request (the journal
                                     names it) and the kubelet holds a new certificate; a worker set back to a
                                     self-signed one is planned "turn on", and `ccp apply` gives it the CA's.
  hardening_names_a_planted_key      `ccp diagnose --only hardening` passes on the fresh cluster; a world-readable file
                                     planted as /etc/kubernetes/pki/ccp-planted.key on the first control plane fails
                                     it (exit 9) in a file-modes finding naming the node and the path; removed, it
                                     passes again.
"""

from __future__ import annotations

import json
import shlex
import time

from ccp.remote.static_pods import LOCK

RENEW_ENV = "/etc/ccp/cert-renew.env"
UNIT = "ccp-cert-renew"
PLANTED = "/etc/kubernetes/pki/ccp-planted.key"
EXPIRIES = ("sudo -n kubeadm certs check-expiration -o "
            "jsonpath='{range .certificates[*]}{.name} {.expirationDate} {.externallyManaged}{\"\\n\"}{end}'")


def _control_planes(cluster) -> dict[str, str]:
    return {n: a for n, a in sorted(cluster.nodes().items()) if "-cp-" in n}


def _expiries(cluster, address: str) -> dict[str, str]:
    """kubeadm's certificate name -> its expiry (RFC 3339, UTC: compares as text), for those kubeadm renews
    and this control plane holds."""
    out = cluster.ssh(address, EXPIRIES).stdout
    # a kubeconfig this control plane does not have (super-admin.conf: the first one only) is listed all the same
    held = set(cluster.ssh(address, "sudo -n ls /etc/kubernetes").stdout.split())
    return {name: date for name, date, external in (line.split() for line in out.splitlines() if line.count(" ") == 2)
            if external == "false" and (not name.endswith(".conf") or name in held)}


SERVING = "/var/lib/kubelet/pki/kubelet-server-current.pem"


def kubelet_serving_certificates(cluster) -> None:
    from tests.local.common import wait_for

    kube = {n: a for n, a in sorted(cluster.nodes().items()) if "-lb-" not in n}
    for name, address in kube.items():
        cert = cluster.ssh(address, f"sudo -n openssl x509 -noout -subject -issuer -ext subjectAltName -in {SERVING}").stdout
        assert f"CN = system:node:{name}" in cert and "issuer=CN = kubernetes" in cert, (name, cert)
        assert f"DNS:{name}, IP Address:{address}\n" in cert, (name, cert)
    worker, wa = next((n, a) for n, a in kube.items() if "-cp-" not in n)
    where = cluster.kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={worker}",
                            "-o", "jsonpath={.items[0].metadata.namespace} {.items[0].metadata.name}").split()
    cluster.kubectl("-n", where[0], "logs", "--tail=1", where[1])   # the API server reached the kubelet over TLS

    cluster.ssh(wa, "sudo -n sh -c 'rm -f /var/lib/kubelet/pki/kubelet-server-*; systemctl restart kubelet'")

    def asked() -> bool:   # a request of the worker's, neither approved nor denied
        out = cluster.kubectl("get", "csr", "-o", "jsonpath={range .items[*]}{.spec.username} "
                              "{.spec.signerName} {.status.conditions[*].type}{\"\\n\"}{end}")
        return f"system:node:{worker} kubernetes.io/kubelet-serving " in out.splitlines()
    wait_for(asked, 60, f"{worker}'s kubelet asking for a serving certificate again", pause=1)
    cp = next(a for n, a in kube.items() if "-cp-" in n)
    cluster.ssh(cp, f"sudo -n systemctl start {UNIT}.service")
    journal = cluster.ssh(cp, f"sudo -n journalctl -u {UNIT} --no-pager -n 20").stdout
    assert f"the serving certificate of {worker}" in journal, journal
    wait_for(lambda: cluster.ssh(wa, f"sudo -n test -f {SERVING}", check=False).returncode == 0, 60,
             f"{worker}'s new serving certificate", pause=1)

    # a kubelet set up without it (as before ccp set it): `ccp apply` turns it on and approves its request
    cluster.ssh(wa, "sudo -n sh -c 'sed -i \"s/^serverTLSBootstrap: true$/serverTLSBootstrap: false/\" "
                    "/var/lib/kubelet/config.yaml; rm -f /var/lib/kubelet/pki/kubelet-server-*; systemctl restart kubelet'")
    plan = json.loads(cluster.ccp("plan", "--config", cluster.config, "--output", "json").stdout)
    actions = next(p for p in plan["phases"] if p["phase"] == "kubelets/serving-certificates")["actions"]
    assert [(a["verb"], a["target"]) for a in actions] == [("turn on", f"the serving certificate of {worker}")], actions
    cluster.ccp("apply", "--config", cluster.config, "--yes")
    assert "serverTLSBootstrap: true" in cluster.ssh(wa, "sudo -n cat /var/lib/kubelet/config.yaml").stdout
    cert = cluster.ssh(wa, f"sudo -n openssl x509 -noout -issuer -in {SERVING}").stdout
    assert "issuer=CN = kubernetes" in cert, cert


def _diagnose(cluster, section: str) -> tuple[int, list[dict]]:
    r = cluster.ccp("diagnose", "--config", cluster.config, "--only", section, "--output", "json", check=False, timeout=300)
    assert r.returncode in (0, 9), f"ccp diagnose --only {section} exited {r.returncode}:\n{r.stderr}"
    return r.returncode, json.loads(r.stdout)["findings"]


def renewal_timer_renews_when_forced(cluster, lifetime_days: int = 100_000, timeout: float = 900) -> dict[str, dict]:
    from tests.local.test_cluster import VIP, readyz

    result = {}
    for cp, address in _control_planes(cluster).items():   # one at a time, as the timers are staggered
        state = cluster.ssh(address, f"systemctl is-enabled {UNIT}.timer; systemctl is-active {UNIT}.timer", check=False)
        assert state.stdout.split() == ["enabled", "active"], f"{cp}: the renewal timer is {state.stdout.split()}"
        before = _expiries(cluster, address)
        assert before, f"{cp}: kubeadm lists no certificate"
        time.sleep(1.1)   # certificates carry whole seconds: a renewal must show in the dates
        misses = 0
        first = not result
        if first:   # the first one starts while ccp's lock is held there, as by a kubeadm upgrade: it must wait
            _hold_control_plane_lock(cluster, address, HOLD)
        try:
            cluster.ssh(address, f"sudo -n mkdir -p /etc/ccp && echo CCP_RENEW_BEFORE_DAYS={lifetime_days} "
                                 f"| sudo -n tee {RENEW_ENV} >/dev/null && sudo -n systemctl start --no-block {UNIT}.service")
            if first:
                time.sleep(3)
                waiting = cluster.ssh(address, f"sudo -n journalctl -u {UNIT}.service -n 5 -o cat --no-pager -q").stdout
                assert "waiting for another change to the static pods" in waiting and "renewing:" not in waiting, waiting
                assert cluster.ssh(address, f"sudo -n flock -n {LOCK} true", check=False).returncode != 0, "the lock is held"
            deadline = time.monotonic() + timeout
            while True:
                shown = cluster.ssh(address, f"systemctl show {UNIT}.service -p ActiveState -p Result").stdout
                props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
                if props.get("ActiveState") in ("inactive", "failed"):
                    break
                assert time.monotonic() < deadline, f"{cp}: {UNIT}.service still {props.get('ActiveState')} after {timeout:.0f}s"
                misses += not readyz(VIP)
                time.sleep(2)
        finally:
            cluster.ssh(address, f"sudo -n rm -f {RENEW_ENV}", check=False)
        journal = cluster.ssh(address, f"sudo -n journalctl -u {UNIT}.service -n 30 -o cat --no-pager -q").stdout
        assert props.get("Result") == "success", f"{cp}: {UNIT}.service ended {props}:\n{journal}"
        assert f"below {lifetime_days}" in journal and "renewed; the API answers through" in journal, journal
        if first:
            assert journal.index("waiting for another change") < journal.index("renewing:"), journal
        assert "PRIVATE KEY" not in journal
        after = _expiries(cluster, address)
        stale = sorted(n for n in before if after.get(n, "") <= before[n])
        assert not stale, f"{cp}: not renewed: {stale}"
        assert readyz(VIP), f"the API does not answer through the VIP {VIP} after {cp} renewed"
        result[cp] = {"before": before, "after": after, "vip_misses": misses}
        print(f"{cp}: {len(after)} certificates renewed (e.g. apiserver {before.get('apiserver')} -> "
              f"{after.get('apiserver')}); /readyz through the VIP missed {misses} time(s) meanwhile")

    code, found = _diagnose(cluster, "certs")
    failed = [f for f in found if f["severity"] == "fail"]
    assert code == 0 and not failed, failed
    timers = [f for f in found if f["check"] == "auto-renew"]
    assert [f["severity"] for f in timers] == ["ok"], timers
    assert all(", last " in e and "not run yet" not in e for e in timers[0]["evidence"]), timers[0]["evidence"]
    return result


HOLD = 20   # seconds the first control plane's lock is held before its timer may renew


def _hold_control_plane_lock(cluster, address: str, seconds: int) -> None:
    """ccp's own lock (static_pods.locked) taken on the node for ``seconds``, in a transient unit."""
    from ccp.remote.static_pods import locked

    cmd = locked(f"sleep {seconds}")
    cluster.ssh(address, f"sudo -n systemd-run --quiet --collect --unit=ccp-test-hold-lock sh -c {shlex.quote(cmd)}")
    for _ in range(50):
        if cluster.ssh(address, f"sudo -n flock -n {LOCK} true", check=False).returncode != 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"{address}: the lock was never taken")


def hardening_names_a_planted_key(cluster) -> None:
    code, found = _diagnose(cluster, "hardening")
    not_ok = [(f["check"], f["severity"], f["what"], f["evidence"]) for f in found if f["severity"] != "ok"]
    assert code == 0 and not not_ok, f"the hardening section does not pass on a fresh cluster: {not_ok}"

    cp, address = next(iter(_control_planes(cluster).items()))
    cluster.ssh(address, f"echo planted | sudo -n tee {PLANTED} >/dev/null && sudo -n chmod 0644 {PLANTED}")
    try:
        code, found = _diagnose(cluster, "hardening")
        modes = next(f for f in found if f["check"] == "file-modes")
        assert code == 9 and modes["severity"] == "fail", modes
        assert PLANTED in modes["what"] and f"{cp}: {PLANTED} is 644, owned by root" in modes["evidence"], modes
        assert "chmod 600" in modes["remediation"]
        assert "planted" not in json.dumps(found).replace("ccp-planted", ""), "the file's content is never read"
    finally:
        cluster.ssh(address, f"sudo -n rm -f {PLANTED}", check=False)
    code, found = _diagnose(cluster, "hardening")
    assert code == 0 and next(f for f in found if f["check"] == "file-modes")["severity"] == "ok"
