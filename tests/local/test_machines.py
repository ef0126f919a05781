"""Local machines for real: the root filesystem (cached, CCP_LOCAL_ROOTFS_CACHE), two systemd-nspawn machines
of a test cluster on their own bridge and subnet, and everything ccp relies on in them: SSH with the host key
the record reports, a running systemd, the address, each other's reach, a cgroup tree of their own with
writable controllers, containerd, passwordless sudo; boot again changes nothing, stop and boot keep the
machine, a machine of another cluster is never touched, and destroy leaves nothing on the host.

The tests share the machines (module fixture) and run in file order; teardown always destroys them.
Needs root, systemd-nspawn (systemd-container) and mmdebstrap; the first run builds the root filesystem (~1 min).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ccp.errors import InfrastructureError

pytestmark = [pytest.mark.local, pytest.mark.timeout(900)]

CLUSTER, OTHER = "ccpmt", "ccpmt-other"
BRIDGE, OTHER_BRIDGE = "ccpmt0", "ccpmt1"
SUBNET, OTHER_SUBNET = "10.78.0", "10.78.1"
# Long names: nspawn shortens their veth names (vb-<name> does not fit 15 characters); they must not collide.
NAMES = ["ccpmt-worker-01", "ccpmt-worker-02"]
CACHE = Path(os.environ.get("CCP_LOCAL_ROOTFS_CACHE", "/var/lib/ccp/local/rootfs"))


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn machines, mounts, a bridge)"
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt-get install {pkg})"
    return None


if _why_not():
    pytest.skip(_why_not(), allow_module_level=True)


@dataclass
class Lab:
    host: object
    specs: list
    rootfs: Path
    key_path: Path
    base: Path
    records: dict = field(default_factory=dict)
    times: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)

    def address(self, name: str) -> str:
        return self.records[name]["address"]

    def ssh(self, name: str, command: str, check: bool = True) -> str:
        """Run ``command`` as the SSH user, trusting only the host key the machine's record reports."""
        import asyncssh

        host_key = asyncssh.import_public_key(self.records[name]["hostKey"])

        async def run():
            async with asyncssh.connect(self.address(name), username="ccp", client_keys=[str(self.key_path)], agent_path=None,
                                        known_hosts=([host_key], [], []), connect_timeout=10) as conn:
                return await conn.run(command, check=False, timeout=60)

        r = asyncio.run(run())
        if check:
            assert r.exit_status == 0, f"{name}: {command}: exit {r.exit_status}\n{r.stdout}{r.stderr}"
        return (r.stdout or "") + ("" if check else (r.stderr or ""))


def _spec(cluster: str, name: str, subnet: str, index: int, bridge: str, key: str):
    from ccp.providers.local_machines import MachineSpec

    return MachineSpec(cluster=cluster, name=name, role="worker", address=f"{subnet}.{10 + index}/24",
                       gateway=f"{subnet}.1", dns=(f"{subnet}.1",), ssh_user="ccp", authorized_key=key, bridge=bridge)


def _lock(merged: Path) -> Path:
    """nspawn's lock file for a machine's directory (it locks the mounted overlay's inode)."""
    st = merged.stat()
    return Path(f"/run/systemd/nspawn/locks/inode-{st.st_dev}:{st.st_ino}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    import asyncssh

    from ccp.providers.local import PACKAGES
    from ccp.providers.local_machines import LocalHost

    base = tmp_path_factory.mktemp("local-machines")
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = base / "id_ed25519"
    key_path.write_bytes(key.export_private_key())
    key_path.chmod(0o600)
    public = key.export_public_key().decode().strip()
    host = LocalHost(base / "machines", CACHE, say=lambda msg: print(f"  [local] {msg}"))
    specs = [_spec(CLUSTER, name, SUBNET, i, BRIDGE, public) for i, name in enumerate(NAMES, 1)]
    t0 = time.monotonic()
    rootfs = host.rootfs(PACKAGES)
    lab = Lab(host, specs, rootfs, key_path, base, times={"rootfs": time.monotonic() - t0})
    try:
        lab.checks = {name: (status, detail) for name, status, detail in
                      host.preflight(2, 400, f"{SUBNET}.0/24", f"{SUBNET}.1", BRIDGE)}
        if lab.checks["addresses"][0] == "fail":
            pytest.skip(f"the test subnet is taken on this host: {lab.checks['addresses'][1]}")
        host.ensure_bridge(BRIDGE, f"{SUBNET}.1/24")
        t0 = time.monotonic()
        lab.records = host.boot_many(specs, rootfs)
        lab.times["boot 2 in parallel"] = time.monotonic() - t0
        yield lab
    finally:
        for spec in specs + [_spec(OTHER, "ccpmt-other-1", OTHER_SUBNET, 1, OTHER_BRIDGE, public)]:
            host.destroy(spec.cluster, spec.name)
        for bridge in (BRIDGE, OTHER_BRIDGE):
            host.remove_bridge_if_unused(bridge)
        print("\n  times: " + ", ".join(f"{k} {v:.2f}s" for k, v in lab.times.items()))


def test_preflight_passes_and_says_what_it_changed(lab):
    checks = lab.checks
    assert {"root", "systemd-nspawn", "mmdebstrap", "kernel", "memory", "addresses", "inotify"} <= set(checks)
    assert not [(n, d) for n, (s, d) in checks.items() if s == "fail"], checks
    status, detail = checks["inotify"]
    assert status == "ok" or (status == "warn" and "raised" in detail and " -> " in detail)
    assert int(Path("/proc/sys/fs/inotify/max_user_instances").read_text()) >= 256


def test_ssh_with_the_reported_host_key_sudo_and_address(lab):
    for spec in lab.specs:
        rec = lab.records[spec.name]
        assert rec["hostKey"].startswith("ssh-ed25519 ") and rec["cluster"] == CLUSTER and rec["role"] == "worker"
        out = lab.ssh(spec.name, "hostname; sudo -n true && echo sudo-ok; ip -4 -o addr show host0; ip route show default; "
                                 "sudo sshd -T | grep -E '^(passwordauthentication|kbdinteractiveauthentication) '")
        assert spec.name in out and "sudo-ok" in out
        assert "passwordauthentication no" in out and "kbdinteractiveauthentication no" in out
        assert f"inet {spec.address} " in out and f"default via {spec.gateway}" in out
        assert (Path(rec["dir"]) / "machine.json").stat().st_mode & 0o777 == 0o600


def test_systemd_is_running(lab):
    for spec in lab.specs:
        state = lab.ssh(spec.name, "systemctl is-system-running --wait", check=False).strip()
        if state != "running":
            print(f"{spec.name} is {state}; failed units:\n" + lab.ssh(spec.name, "systemctl --failed --no-legend", check=False))
        assert state in ("running", "degraded")
        # installed for the load balancers, where ccp enables them; off everywhere else
        out = lab.ssh(spec.name, "ls /usr/sbin/nginx /usr/sbin/keepalived; systemctl is-enabled nginx keepalived", check=False)
        assert "/usr/sbin/nginx" in out and "/usr/sbin/keepalived" in out and out.count("disabled") == 2, out


def test_machines_reach_each_other(lab):
    a, b = NAMES
    for src, dst in ((a, b), (b, a)):   # no ping in the root filesystem: sshd's banner over TCP instead
        out = lab.ssh(src, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{lab.address(dst)}/22; head -c 4 <&3'")
        assert out.startswith("SSH-")


def test_nat_takes_the_machines_out_through_the_host_and_goes_with_the_bridge(lab):
    """spec.local.nat: a machine reaches a network beyond the host (a namespace standing for the outside, with no
    route back to the machines' subnet) and arrives there from the host's address; the rules are removed exactly."""
    import subprocess

    from ccp.providers import local_nat

    ns, out_host, out_ns = "ccpmt-out", "ccpmt-o0", "ccpmt-o1"
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)   # noqa: E731
    run("ip", "netns", "add", ns)
    server = None
    try:
        run("ip", "link", "add", out_host, "type", "veth", "peer", "name", out_ns)
        run("ip", "link", "set", out_ns, "netns", ns)
        run("ip", "addr", "add", f"{SUBNET[:-2]}.9.1/24", "dev", out_host)
        run("ip", "link", "set", out_host, "up")
        run("ip", "-n", ns, "addr", "add", f"{SUBNET[:-2]}.9.2/24", "dev", out_ns)
        run("ip", "-n", ns, "link", "set", out_ns, "up")
        # the outside answers whoever connects with the address it sees; it knows no route to the machines
        server = subprocess.Popen(["ip", "netns", "exec", ns, "python3", "-c",
                                   "import socket; s = socket.socket(); s.bind(('0.0.0.0', 8099)); s.listen()\n"
                                   "while True:\n c, a = s.accept(); c.sendall(a[0].encode() + b'\\n'); c.close()"])
        fetch = f"timeout 5 bash -c 'exec 3<>/dev/tcp/{SUBNET[:-2]}.9.2/8099; head -n 1 <&3'"
        time.sleep(0.5)
        assert local_nat.ensure(BRIDGE, f"{SUBNET}.0/24") is True
        assert local_nat.ensure(BRIDGE, f"{SUBNET}.0/24") is False, "a second time changes nothing"
        assert lab.ssh(NAMES[0], fetch).strip() == f"{SUBNET[:-2]}.9.1", "seen from outside as the host"
        assert len(local_nat.remove(BRIDGE)) == 3 and local_nat.present(BRIDGE) == []
        assert lab.ssh(NAMES[0], fetch, check=False).strip() != f"{SUBNET[:-2]}.9.1", "without the rules, no way out"
    finally:
        if server is not None:
            server.kill()
        local_nat.remove(BRIDGE)
        subprocess.run(["ip", "link", "del", out_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_each_machine_has_its_own_writable_cgroups(lab):
    seen = set()
    for name in NAMES:
        leader = lab.records[name]["pid"]
        host_view = Path(f"/proc/{leader}/cgroup").read_text()
        assert f"memory:/ccp-local/{name}" in host_view and f"0::/ccp-local/{name}/" in host_view, host_view
        seen.add(host_view)
        inside = lab.ssh(name, "cat /proc/1/cgroup")
        assert "memory:/\n" in inside   # a cgroup namespace rooted at the machine's own cgroup
        lab.ssh(name, "sudo mkdir /sys/fs/cgroup/memory/ccp-probe")   # writable, and lands in the machine's tree
        try:
            assert Path(f"/sys/fs/cgroup/memory/ccp-local/{name}/ccp-probe").is_dir()
        finally:
            lab.ssh(name, "sudo rmdir /sys/fs/cgroup/memory/ccp-probe")
    assert len(seen) == len(NAMES)


def test_containerd_runs(lab):
    for name in NAMES:
        out = lab.ssh(name, "systemctl is-active containerd && sudo ctr version")
        assert "Server:" in out and "Revision" in out
    rec = lab.records[NAMES[0]]   # containerd's root is the machine's own directory, not the overlay
    assert list(Path(rec["dir"], "containerd").glob("io.containerd.*"))
    in_overlay = Path(rec["dir"], "upper", "var", "lib", "containerd")   # at most the empty mount point
    assert not in_overlay.exists() or not any(in_overlay.iterdir())


def test_boot_again_changes_nothing(lab):
    spec = lab.specs[0]
    before = lab.records[spec.name]
    t0 = time.monotonic()
    again = lab.host.boot(spec, lab.rootfs)
    assert time.monotonic() - t0 < 1
    assert (again["launcher_pid"], again["pid"]) == (before["launcher_pid"], before["pid"])
    assert lab.host.status(CLUSTER, spec.name) == "running"


def test_a_changed_address_or_a_taken_one_boots_nothing(lab):
    """Found on real nodes: growing the control planes shifted a worker's address, and while that worker was refused
    a new machine booted on its address. Every conflict is found before anything boots."""
    import dataclasses

    from ccp.errors import InfrastructureError

    key = lab.specs[0].authorized_key
    moved = dataclasses.replace(lab.specs[1], address=f"{SUBNET}.99/24")
    squatter = _spec(CLUSTER, "ccpmt-worker-03", SUBNET, 1, BRIDGE, key)   # index 1: the address of NAMES[0]
    assert [c.split()[0] for c in lab.host.conflicts([moved, squatter])] == [moved.name, squatter.name]
    with pytest.raises(InfrastructureError) as info:
        lab.host.boot_many([lab.specs[0], moved, squatter], lab.rootfs)
    assert "nothing was booted" in info.value.message and len(info.value.details) == 2
    assert lab.host.status(CLUSTER, squatter.name) == "absent"
    assert lab.host.conflicts(lab.specs) == []
    # a machine about to be removed (an orphan of a failed run) gives its address up
    assert lab.host.conflicts([squatter], ignore=(NAMES[0],)) == []


def test_stop_then_boot_keeps_the_machine(lab):
    from ccp.providers.local_machines import ssh_answers

    spec = lab.specs[1]
    lab.ssh(spec.name, "echo kept > ~/marker")
    t0 = time.monotonic()
    lab.host.stop(CLUSTER, spec.name)
    lab.times["stop"] = time.monotonic() - t0
    old = lab.records[spec.name]
    assert lab.host.status(CLUSTER, spec.name) == "stopped"
    assert not ssh_answers(old["address"]) and not Path(f"/proc/{old['pid']}").exists()
    assert not Path(f"/sys/class/net/{old['veth']}").exists()
    t0 = time.monotonic()
    lab.records[spec.name] = rec = lab.host.boot(spec, lab.rootfs)
    lab.times["boot 1 (restart)"] = time.monotonic() - t0
    assert lab.host.status(CLUSTER, spec.name) == "running" and rec["pid"] != old["pid"]
    assert rec["hostKey"] == old["hostKey"]   # the same machine: same host key (lab.ssh checks it), same files
    assert lab.ssh(spec.name, "cat ~/marker").strip() == "kept"


def test_another_cluster_side_by_side_is_never_touched(lab):
    other = _spec(OTHER, "ccpmt-other-1", OTHER_SUBNET, 1, OTHER_BRIDGE, lab.specs[0].authorized_key)
    assert lab.host.ensure_bridge(OTHER_BRIDGE, f"{OTHER_SUBNET}.1/24") is True
    assert lab.host.ensure_bridge(OTHER_BRIDGE, f"{OTHER_SUBNET}.1/24") is False
    rec = lab.host.boot(other, lab.rootfs)
    assert set(lab.host.machines(OTHER)) == {other.name} and set(lab.host.machines(CLUSTER)) == set(NAMES)
    lab.host.destroy(CLUSTER, other.name)   # not this cluster's machine: a no-op
    lab.host.stop(CLUSTER, other.name)
    assert lab.host.status(OTHER, other.name) == "running" and lab.host.status(CLUSTER, other.name) == "absent"
    with pytest.raises(InfrastructureError, match="belongs to cluster ccpmt"):
        lab.host.boot(_spec(OTHER, NAMES[0], OTHER_SUBNET, 2, OTHER_BRIDGE, lab.specs[0].authorized_key), lab.rootfs)
    assert lab.host.remove_bridge_if_unused(OTHER_BRIDGE) is False   # a machine is on it
    lab.host.destroy(OTHER, other.name)
    assert lab.host.remove_bridge_if_unused(OTHER_BRIDGE) is True
    assert not Path(rec["dir"]).exists()
    for name in NAMES:
        assert lab.host.status(CLUSTER, name) == "running"


def test_destroy_leaves_nothing(lab):
    records = {n: dict(lab.records[n]) for n in NAMES}
    locks = [_lock(Path(r["dir"]) / "merged") for r in records.values()]
    assert all(lk.exists() for lk in locks)
    t0 = time.monotonic()
    for name in NAMES:
        lab.host.destroy(CLUSTER, name)
    lab.times["destroy 2"] = time.monotonic() - t0
    assert lab.host.remove_bridge_if_unused(BRIDGE) is True
    assert lab.host.machines(CLUSTER) == {} and all(lab.host.status(CLUSTER, n) == "absent" for n in NAMES)

    def leftovers() -> list[str]:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError):
                continue
            if "systemd-nspawn" in cmd and any(f"-M {n} " in cmd for n in NAMES):
                found.append(f"process {proc.name}: {cmd[:80]}")
        pids = {str(r[k]) for r in records.values() for k in ("pid", "launcher_pid")}
        found += [f"process {p} (a machine's)" for p in pids if Path(f"/proc/{p}").exists()]
        mounts = Path("/proc/self/mountinfo").read_text()
        found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if str(lab.base) in line]
        found += [f"link {r['veth']}" for r in records.values() if Path(f"/sys/class/net/{r['veth']}").exists()]
        found += [f"link {BRIDGE}"] if Path(f"/sys/class/net/{BRIDGE}").exists() else []
        found += [f"cgroup {p}" for n in NAMES for p in Path("/sys/fs/cgroup").glob(f"*/ccp-local/{n}")]
        found += [f"propagate {n}" for n in NAMES if Path(f"/run/systemd/nspawn/propagate/{n}").exists()]
        found += [f"lock {lk}" for lk in locks if lk.exists()]
        found += [f"machine dir {r['dir']}" for r in records.values() if Path(r["dir"]).exists()]
        return found

    deadline = time.monotonic() + 10   # killed processes are zombies until init reaps them
    while leftovers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert leftovers() == []
    lab.host.destroy(CLUSTER, NAMES[0])   # again: a no-op
