"""Rendered scripts and server configs pass the real checkers: bash -n and shellcheck (no warnings),
nginx -t (Debian's nginx with the stream module), keepalived -t."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from ccp import render
from ccp.config.load import load
from tests.conftest import example_data, small_config, write_config

def backup_config():
    data = example_data()
    data["spec"]["backup"] = {"schedule": "Mon..Fri *-*-* 02:30:00", "keep": 5}
    return data


CASES = {"example": example_data, "small": small_config, "backup": backup_config}


def rendered(tmp_path, case: str):
    data = CASES[case]()
    out = render.render_all(load(write_config(tmp_path / f"{case}.yaml", data)))
    render.write(out, tmp_path / "r")
    return out, tmp_path / "r"


def need(tool: str, path: str | None = None):
    if shutil.which(tool) is None and not (path and shutil.os.path.exists(path)):
        pytest.skip(f"{tool} is not installed (hack/setup.sh installs it)")


@pytest.mark.parametrize("case", sorted(CASES))
def test_scripts_pass_bash_n_and_shellcheck(tmp_path, case):
    need("shellcheck")
    out, root = rendered(tmp_path, case)
    scripts = sorted(p for p in out.files if p.endswith(".sh"))
    assert any("prepare-node.sh" in p for p in scripts) and any("loadbalancer.sh" in p for p in scripts)
    assert any("etcd-backup.sh" in p for p in scripts) == (case == "backup")
    assert any("cert-renew.sh" in p for p in scripts)   # spec.security.certificates.autoRenew: on by default
    for rel in scripts:
        shell = "sh" if rel.endswith("check_apiserver.sh") else "bash"
        proc = subprocess.run([shell, "-n", str(root / rel)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{rel}: {proc.stderr}"
    proc = subprocess.run(["shellcheck", "--severity=style", *[str(root / p) for p in scripts]],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_prepare_script_carries_its_hash_and_the_bom_versions(tmp_path):
    out, _ = rendered(tmp_path, "example")
    text = out.files["scripts/demo-cp-1/prepare-node.sh"]
    h = render.script_hash(text)
    assert len(h) == 16 and f'echo "{h}" > "/etc/ccp/prepared"' in text
    assert 'want="1.37.1"' in text and "vm.max_map_count = 262144" in text
    assert "registry.k8s.io/pause:3.10.1" in text
    assert "scripts/demo-lb-1/prepare-node.sh" not in out.files


def test_nginx_config_passes_nginx_t(tmp_path):
    need("nginx", "/usr/sbin/nginx")
    out, root = rendered(tmp_path, "example")
    for rel in (p for p in out.files if p.endswith("nginx.conf")):
        # the upstream servers it includes, as the load balancer writes them first (all up)
        health = root / rel.replace("nginx.conf", "apiserver-health.sh")
        subprocess.run(["sh", str(health), "--all-up"], check=True, env={**os.environ, "CCP_APISERVERS": str(root / rel.replace(
            "nginx.conf", "ccp-apiservers.conf"))})
        proc = subprocess.run(["/usr/sbin/nginx", "-t", "-c", str(root / rel)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "syntax is ok" in proc.stderr


@pytest.fixture
def keepalived_netns():
    """keepalived -t insists that the interface and the track script exist: give it both, in a network
    namespace of the test's own — a veth pair named like the node's NIC, and the rendered check script
    at /etc/keepalived/ through ip-netns' /etc/netns/<name>/ overlay. Nothing leaves the namespace."""
    import os
    from pathlib import Path

    name = f"ccp-test-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {made.stderr.strip()}")
    overlay = Path("/etc/netns") / name
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "ens192", "type", "veth", "peer", "name", "peer0"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "ens192", "up"], check=True)
        (overlay / "keepalived").mkdir(parents=True)

        def check(conf: Path, script: Path) -> subprocess.CompletedProcess:
            target = overlay / "keepalived" / "check_apiserver.sh"
            target.write_text(script.read_text())
            target.chmod(0o755)
            return subprocess.run(["ip", "netns", "exec", name, "/usr/sbin/keepalived", "-t", "-f", str(conf)],
                                  capture_output=True, text=True)

        yield check
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        shutil.rmtree(overlay, ignore_errors=True)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keepalived_config_passes_keepalived_t(tmp_path, case, keepalived_netns):
    need("keepalived", "/usr/sbin/keepalived")
    out, root = rendered(tmp_path, case)
    confs = [p for p in out.files if p.endswith("keepalived.conf")]
    assert confs
    for rel in confs:
        proc = keepalived_netns(root / rel, (root / rel).with_name("check_apiserver.sh"))
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_backup_timer_calendar_passes_systemd_analyze(tmp_path):
    """The timer's OnCalendar line, judged by this machine's systemd; the units parse as INI."""
    import configparser

    need("systemd-analyze")
    out, root = rendered(tmp_path, "backup")
    timers = [p for p in out.files if p.endswith("ccp-etcd-backup.timer")]
    assert len(timers) == 3
    for rel in timers + [t.replace(".timer", ".service") for t in timers]:
        ini = configparser.ConfigParser(strict=True, interpolation=None)
        ini.optionxform = str
        ini.read_string(out.files[rel])
        if rel.endswith(".timer"):
            proc = subprocess.run(["systemd-analyze", "calendar", ini["Timer"]["OnCalendar"]], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            assert ini["Install"]["WantedBy"] == "timers.target" and ini["Timer"]["Persistent"] == "true"
        else:
            assert ini["Service"]["ExecStart"] == "/usr/local/sbin/ccp-etcd-backup"


def test_restore_node_scripts_pass_bash_n_and_shellcheck(tmp_path):
    """The shell ccp sends to control planes during a restore, as it sends it."""
    need("shellcheck")
    from ccp.backup import restore as r

    scripts = {"park": r.park_script(), "unpark": r.unpark_script("etcd.yaml"),
               "restore": r.node_restore_script("cp-1", {"cp-1": "10.0.0.11", "cp-2": "10.0.0.12"}, "abc123",
                                                "registry.k8s.io/etcd:3.6.8-0")}
    for name, text in scripts.items():
        path = tmp_path / f"{name}.sh"
        path.write_text("#!/usr/bin/env bash\n" + text + "\n")
        assert subprocess.run(["bash", "-n", str(path)]).returncode == 0, name
        proc = subprocess.run(["shellcheck", "--severity=style", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stdout}"


def test_timer_units_pass_systemd_analyze_verify(tmp_path):
    """The backup and certificate renewal units, judged by this machine's systemd (their ExecStart pointed at
    /bin/true: the script exists only on a node)."""
    need("systemd-analyze")
    out, _ = rendered(tmp_path, "backup")
    units = {p: t for p, t in out.files.items() if p.startswith("systemd/demo-cp-2/")}
    assert {p.rsplit("/", 1)[1] for p in units} == {"ccp-etcd-backup.service", "ccp-etcd-backup.timer",
                                                   "ccp-cert-renew.service", "ccp-cert-renew.timer"}
    d = tmp_path / "units"
    d.mkdir()
    for rel, text in units.items():
        lines = ["ExecStart=/bin/true" if line.startswith("ExecStart=") else line for line in text.splitlines()]
        (d / rel.rsplit("/", 1)[1]).write_text("\n".join(lines) + "\n")
    proc = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in d.iterdir())],
                          capture_output=True, text=True, cwd=d)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def health_round(script, env, conf) -> list[str]:
    """Let the rendered NGINX health check run its first round (1.5 s), then the API servers it marked down."""
    proc = subprocess.Popen(["sh", str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=1.5)
    except subprocess.TimeoutExpired:
        proc.kill()
    return [line.split()[1].split(":")[0] for line in conf.read_text().splitlines() if line.endswith(" down;")]


def test_the_api_server_health_check_marks_failing_servers_down_for_real(tmp_path):
    """Found on real nodes: NGINX's least_conn sent every new connection to the API server with the fewest, which is
    the one that does not answer (its etcd stopped: every request through the VIP failed; just restarted by `ccp certs
    renew`: 13 of 143 probes failed). The rendered health check runs here with curl and nginx stand-ins: a failing
    server is marked down and NGINX reloaded once; all failing, none is; back, it is up again."""
    out, root = rendered(tmp_path, "example")
    script = root / "nginx" / "demo-lb-1" / "apiserver-health.sh"
    bin_, state = tmp_path / "bin", tmp_path / "failing"
    bin_.mkdir()
    (bin_ / "curl").write_text(f'#!/bin/sh\nfor a; do u=$a; done\ngrep -qx "$(echo "$u" | cut -d/ -f3 | cut -d: -f1)" {state} && exit 22\nexit 0\n')
    (bin_ / "nginx").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "nginx.log"}\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    conf = tmp_path / "ccp-apiservers.conf"
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "CCP_APISERVERS": str(conf)}
    servers = ["10.10.0.22", "10.10.0.23", "10.10.0.24"]

    def run(failing: list[str]) -> list[str]:
        state.write_text("".join(f"{s}\n" for s in failing))
        return health_round(script, env, conf)
    assert run(["10.10.0.23"]) == ["10.10.0.23"]
    assert [ln for ln in conf.read_text().splitlines() if ln.startswith("server")] == [
        f"server {s}:6443 max_fails=2 fail_timeout=10s{' down' if s == '10.10.0.23' else ''};" for s in servers]
    assert (tmp_path / "nginx.log").read_text().splitlines() == ["-t -q", "-s reload"]
    assert run(servers) == []            # all failing: NGINX keeps trying them all
    assert run([]) == []
    subprocess.run(["sh", str(script), "--all-up"], env=env, check=True)
    assert "down" not in "".join(ln for ln in conf.read_text().splitlines() if ln.startswith("server"))


def test_a_held_api_server_is_marked_down_whatever_its_readyz_and_hold_script_sees_it(tmp_path):
    """`ccp upgrade` holds a control plane's API server out of the load balancers before kubeadm restarts its etcd
    (found on real nodes: kubelets held on it posted no status for 40 s and their nodes went NotReady). The rendered
    health check and lb_hold's scripts run here for real, with curl and nginx stand-ins: the held address is marked
    down though it answers, lb_hold.hold_script sees it marked, a list older than 30 minutes is ignored, and never
    all are down."""
    from ccp.remote import lb_hold

    out, root = rendered(tmp_path, "example")
    script = root / "nginx" / "demo-lb-1" / "apiserver-health.sh"
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "curl").write_text("#!/bin/sh\nexit 0\n")   # every API server answers /readyz
    (bin_ / "nginx").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path / "nginx.log"}\n')
    for f in bin_.iterdir():
        f.chmod(0o755)
    conf, held = tmp_path / "ccp-apiservers.conf", tmp_path / "held"
    env = {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "CCP_APISERVERS": str(conf), "CCP_APISERVERS_HELD": str(held)}

    def run() -> list[str]:
        return health_round(script, env, conf)

    def hold(address: str) -> subprocess.CompletedProcess:
        cmd = lb_hold.hold_script(address, timeout=1).replace(lb_hold.SERVERS, str(conf)).replace(lb_hold.HELD, str(held))
        return subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)

    missing = hold("10.10.0.23")
    assert missing.returncode == lb_hold.NO_CHECK and "no API server health check yet" in missing.stderr
    assert run() == []
    before = hold("10.10.0.23")          # listed, but the check has not marked it yet
    assert before.returncode == 1 and "did not mark 10.10.0.23 down" in before.stderr
    assert held.read_text().split() == ["10.10.0.23"]
    assert run() == ["10.10.0.23"]
    assert hold("10.10.0.23").returncode == 0
    os.utime(held, (time.time() - 31 * 60,) * 2)   # left behind by a ccp that was killed: expired
    assert run() == []
    held.write_text("10.10.0.22\n10.10.0.23\n10.10.0.24\n")
    assert run() == []                   # never every API server down
    held.unlink()                        # lb_hold.RELEASE
    assert run() == []
