"""Certificates that renew themselves: the certs/auto-renew phase against the recording SSH nodes (a timer on
every control plane at its own time; a rerun changes nothing; autoRenew: false removes it), and the rendered
renewal script run for real by bash over stand-ins for kubeadm, curl and sleep: it renews only below the
threshold (or when CCP_RENEW_BEFORE_DAYS forces it), never while another control plane's API server is not
ready, restarts the static pods, and logs names and dates only. tests/e2e/test_cert_renewal_real.py runs the
same script over the real kubeadm."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import example_data, run_ccp, write_config

TIMER = "/etc/systemd/system/ccp-cert-renew.timer"
SCRIPT = "/usr/local/sbin/ccp-cert-renew"
KEY_LINE = "-----BEGIN PRIVATE KEY----- MIIEplanted"   # what a kubeadm stand-in prints that must never be logged


def with_certificates(cfg, **certificates):
    data = yaml.safe_load(cfg.read_text())
    data["spec"].setdefault("security", {})["certificates"] = certificates
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_timer_on_every_control_plane_at_its_own_time_then_reruns_clean_and_is_removed(cluster):
    fc, cfg = cluster()
    plan = run_ccp("plan", "--config", cfg)
    assert plan.code == 0 and "install the certificate renewal timer (renew below 30 days left, checked daily from " \
        "03:00, 20 min apart) on 3 hosts" in plan.out.replace("\n", " "), plan.out
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "certs/auto-renew")
    assert r.code == 0, r.text
    cps = fc.names_by_prefix("cp")
    assert fc.timers["ccp-cert-renew"] == set(cps), r.text
    assert [fc.files[n][TIMER].split("OnCalendar=")[1].split("\n")[0] for n in cps] == \
        ["*-*-* 03:00:00", "*-*-* 03:20:00", "*-*-* 03:40:00"]
    assert {fc.modes[n][SCRIPT] for n in cps} == {"700"}
    assert not any(TIMER in fc.files[n] for n in fc.names if n not in cps)

    before = len(fc.records)
    again = run_ccp("install", "--config", cfg, "--yes", "--until", "certs/auto-renew")
    assert again.code == 0 and not [m for m in fc.mutating() if m in fc.records[before:]]

    with_certificates(cfg, renewBeforeDays=60, dailyAt="01:15")
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "certs/auto-renew")
    assert r.code == 0 and "01:35:00" in fc.files["fk-cp-2"][TIMER] and ":-60}" in fc.files["fk-cp-2"][SCRIPT]

    with_certificates(cfg, autoRenew=False)
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "certs/auto-renew")
    assert r.code == 0, r.text
    assert fc.timers["ccp-cert-renew"] == set() and not any(TIMER in fc.files[n] or SCRIPT in fc.files[n] for n in cps)


# ------------------------------------------------------------------ the script, run for real

def rendered_script(tmp_path: Path, node: str = "demo-cp-2", data: dict | None = None) -> str:
    from ccp import render
    from ccp.config.load import load

    out = render.render_all(load(write_config(tmp_path / "renew.yaml", data or example_data())))
    return out.files[f"scripts/{node}/cert-renew.sh"]


def sandbox(script: str, root: Path, stubs: Path) -> tuple[Path, dict]:
    """The script with its node paths moved under ``root`` (manifests, lock), and an environment whose PATH
    starts with ``stubs``: curl answers from ``stubs/down-<address>`` (absent: ready), sleep returns at once,
    crictl lists no container."""
    manifests = root / "etc" / "kubernetes" / "manifests"
    if not manifests.is_dir():   # (the real kubeadm's, in the e2e test, are kept)
        manifests.mkdir(parents=True)
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            (manifests / f"{name}.yaml").write_text(f"# {name}\n")
    stubs.mkdir(exist_ok=True)
    (stubs / "curl").write_text('#!/bin/bash\nurl=${!#}; host=${url#https://}; host=${host%%:*}\n'
                                'echo "$url" >> "$(dirname "$0")/curl.log"\n[ ! -e "$(dirname "$0")/down-$host" ] || exit 7\n')
    (stubs / "sleep").write_text("#!/bin/sh\nexit 0\n")
    (stubs / "crictl").write_text("#!/bin/sh\nexit 0\n")   # no static pod container runs: the restart goes on at once
    for stub in ("curl", "sleep", "crictl"):
        (stubs / stub).chmod(0o755)
    path = root / "cert-renew.sh"
    path.write_text(script.replace("/run/ccp-control-plane.lock", str(root / "lock"))
                    .replace("/etc/kubernetes", str(root / "etc" / "kubernetes")))
    return path, {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}


def fake_kubeadm(stubs: Path, expires: str, fail_renew: bool = False) -> None:
    """kubeadm's two commands the script runs: check-expiration prints the jsonpath lines (the CA-signed
    certificates, one external and one missing to be ignored), renew all moves every date a year on."""
    state = stubs / "expires"
    state.write_text(expires)
    (stubs / "kubeadm").write_text(f"""#!/bin/bash
echo "$*" >> "$(dirname "$0")/kubeadm.log"
if [ "$2" = check-expiration ]; then
  d=$(cat {state})
  for n in admin.conf apiserver etcd-server; do echo "$n $d false false"; done
  echo "front-proxy-client 2000-01-01T00:00:00Z true false"
  echo "super-admin.conf 2000-01-01T00:00:00Z false true"
elif [ "$2" = renew ]; then
  {'echo "[renew] error: the CA key is unreadable" >&2; exit 1' if fail_renew else ''}
  echo "{KEY_LINE}"
  for n in admin apiserver etcd; do echo "certificate for $n renewed"; done
  date -u -d '+365 days' +%Y-%m-%dT%H:%M:%SZ > {state}
fi
""")
    (stubs / "kubeadm").chmod(0o755)


def in_days(days: int) -> str:
    return subprocess.run(["date", "-u", "-d", f"+{days} days", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True,
                          text=True, check=True).stdout.strip()


def run(path: Path, env: dict, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(path)], capture_output=True, text=True, env={**env, **extra}, timeout=60)


def test_nothing_is_renewed_above_the_threshold(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(200))
    r = run(path, env)
    assert r.returncode == 0, r.stderr
    assert "nothing to renew: the soonest, admin.conf, expires" in r.stdout and re.search(r"\((199|200) days left; renewing below 30\)", r.stdout)
    assert "renew" not in (tmp_path / "bin" / "kubeadm.log").read_text().replace("check-expiration", "")


def test_below_the_threshold_it_renews_restarts_and_waits_logging_no_key(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(12))
    r = run(path, env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ccp-cert-renew: renewing: admin.conf expires") and "below 30" in lines[0]
    assert "kubeadm renewed 3 certificates" in r.stdout and "restarting the static pods" in r.stdout
    assert lines[-1].startswith("ccp-cert-renew: renewed; the API answers through 10.10.0.10:6443") and re.search(r"\((364|365) days left\)", lines[-1])
    assert "MIIE" not in r.stdout + r.stderr, "kubeadm's own output is not logged"
    manifests = tmp_path / "node" / "etc" / "kubernetes" / "manifests"
    assert len(list(manifests.glob("*.yaml"))) == 4 and not (manifests.parent / "ccp-parked-manifests").exists()
    asked = (tmp_path / "bin" / "curl.log").read_text().split()
    # the other control planes first, then its own API server and the VIP after the restart
    assert asked == ["https://10.10.0.22:6443/readyz", "https://10.10.0.24:6443/readyz",
                     "https://127.0.0.1:6443/readyz", "https://10.10.0.10:6443/readyz"]


def test_a_threshold_above_the_lifetime_forces_a_renewal(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(364))
    r = run(path, env, CCP_RENEW_BEFORE_DAYS="1000")
    assert r.returncode == 0 and "below 1000" in r.stdout and "renew all" in (tmp_path / "bin" / "kubeadm.log").read_text()


def test_no_renewal_while_another_control_planes_api_server_is_down(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(5))
    (tmp_path / "bin" / "down-10.10.0.24").touch()
    r = run(path, env)
    assert r.returncode == 1
    assert "not renewed now: the API server of demo-cp-3 (10.10.0.24) is not ready" in r.stderr and "next run tries again" in r.stderr
    assert "renew all" not in (tmp_path / "bin" / "kubeadm.log").read_text()
    assert len(list((tmp_path / "node" / "etc" / "kubernetes" / "manifests").glob("*.yaml"))) == 4


def test_a_failed_kubeadm_renewal_says_so_and_restarts_nothing(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(5), fail_renew=True)
    r = run(path, env)
    assert r.returncode == 1 and "kubeadm certs renew all failed" in r.stderr and "the CA key is unreadable" in r.stderr
    assert "restarting" not in r.stdout


def _hold_lock(lock: Path, seconds: float) -> subprocess.Popen:
    """What ccp runs on a control plane around a static-pod change (static_pods.locked), for real: flock holding
    ``lock`` while a command runs; returns once the lock is taken."""
    from ccp.remote.static_pods import LOCK, locked

    marker = lock.parent / "held"
    cmd = locked(f"touch {marker}; sleep {seconds}").replace(LOCK, str(lock))
    holder = subprocess.Popen(["sh", "-c", cmd])
    for _ in range(100):
        if marker.exists():
            return holder
        subprocess.run(["sleep", "0.05"])
    raise AssertionError("the holder never took the lock")


def test_the_timer_waits_for_a_change_ccp_is_making_to_the_static_pods(tmp_path):
    path, env = sandbox(rendered_script(tmp_path), tmp_path / "node", tmp_path / "bin")
    fake_kubeadm(tmp_path / "bin", in_days(5))
    holder = _hold_lock(tmp_path / "node" / "lock", 1.5)
    r = run(path, env)
    assert holder.wait(10) == 0
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == f"ccp-cert-renew: waiting for another change to the static pods of demo-cp-2 to end ({tmp_path / 'node' / 'lock'})"
    assert "renewed; the API answers" in r.stdout


def test_ccp_waits_for_the_lock_then_refuses_in_two_lines_while_it_stays_held(tmp_path):
    from ccp.errors import RemoteError
    from ccp.remote.static_pods import LOCK, LOCK_BUSY, lock_busy, locked

    lock = tmp_path / "lock"
    holder = _hold_lock(lock, 3)
    ran = tmp_path / "ran"
    busy = subprocess.run(["sh", "-c", locked(f"touch {ran}", wait=1).replace(LOCK, str(lock))])
    assert busy.returncode == LOCK_BUSY and not ran.exists()

    class Result:
        exit_status = busy.returncode
    err = lock_busy("demo-cp-1", Result(), wait=1)
    assert isinstance(err, RemoteError) and "demo-cp-1: another change to its static pods held" in str(err)
    assert "journalctl -u ccp-cert-renew" in err.resolution
    holder.wait(10)
    done = subprocess.run(["sh", "-c", locked(f"touch {ran}; exit 3", wait=1).replace(LOCK, str(lock))])
    assert done.returncode == 3 and ran.exists(), "the command's own exit code passes through"
    Result.exit_status = 3
    assert lock_busy("demo-cp-1", Result()) is None


# ------------------------------------------------------------------ ccp diagnose reads the timers

def test_diagnose_fails_when_a_timer_is_missing_or_its_last_run_failed(cluster, tmp_path):
    import json

    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "certs/auto-renew").code == 0
    (tmp_path / ".ccp" / "fk" / "kubeconfig").unlink()   # the fake admin.conf holds no real certificate to read

    def auto_renew():
        r = run_ccp("diagnose", "--config", cfg, "--only", "certs", "--output", "json")
        return r.code, [f for f in json.loads(r.out)["findings"] if f["check"] == "auto-renew"]

    code, found = auto_renew()
    assert [f["severity"] for f in found] == ["ok"] and "3 control plane(s): the renewal timer is active" in found[0]["what"]
    assert "renews below 30 days left" in found[0]["what"] and code == 0

    fc.renew_failed.add("fk-cp-2")
    fc.timers["ccp-cert-renew"].discard("fk-cp-3")
    code, found = auto_renew()
    assert code == 9
    bad = {f["what"].split(":")[0]: f for f in found if f["severity"] == "fail"}
    assert set(bad) == {"fk-cp-2", "fk-cp-3"}
    assert "the last certificate renewal run failed (exit-code, exit 1)" in bad["fk-cp-2"]["what"]
    assert any("API server of fk-cp-3" in e for e in bad["fk-cp-2"]["evidence"])
    assert "journalctl -u ccp-cert-renew on fk-cp-2" in bad["fk-cp-2"]["remediation"]
    assert "missing (not-found)" in bad["fk-cp-3"]["what"] and "certs/auto-renew" in bad["fk-cp-3"]["remediation"]
    assert next(f for f in found if f["severity"] == "ok")["what"].startswith("1 control plane(s)")


def test_a_kubeconfig_near_its_end_is_fetched_again_from_the_renewed_control_plane(cluster, tmp_path):
    """After the timers renewed admin.conf on the control planes, ccp's own copy still holds the old client
    certificate: the kubeconfig phase fetches it again once that is within renewBeforeDays of its end."""
    import base64

    from tests.unit.test_diagnose import make_cert

    fc, cfg = cluster()
    assert run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig").code == 0
    path = tmp_path / ".ccp" / "fk" / "kubeconfig"
    doc = yaml.safe_load(path.read_text())
    doc["users"][0]["user"]["client-certificate-data"] = base64.b64encode(make_cert(12)[0]).decode()
    path.write_text(yaml.safe_dump(doc))
    plan = run_ccp("plan", "--config", cfg)
    assert re.search(r"its client certificate expires in 1[12] days: the control planes' renewed admin.conf", plan.out), plan.out
    r = run_ccp("install", "--config", cfg, "--yes", "--until", "kubeconfig")
    assert r.code == 0 and "Q0VSVC1EQVRB" in path.read_text()   # the control plane's (fake) admin.conf again
