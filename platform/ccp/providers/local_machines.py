"""Local machines: full systemd machines on this host (systemd-nspawn), the analogue of VMs.

A machine lives in ``<machines_dir>/<name>``: an overlay on the shared root filesystem (local_rootfs) in
``upper/ work/ merged/``, real directories bound on /var/lib/containerd and /var/lib/etcd (containerd
refuses an overlay root), ``console.log`` (its console) and ``machine.json`` (0600: owner cluster, address,
pids, host key). It has its own address on a host bridge and is reached over SSH. Machines outlive the
process that booted them; ``destroy`` removes one, and only for the cluster that owns it.

The launch, as measured on a cgroup v1 hybrid host without systemd as PID 1: a launcher moves itself into
``<hierarchy>/ccp-local/<name>`` of every cgroup hierarchy (unified and name=systemd too) and then execs
systemd-nspawn, so each machine's cgroup namespace has a root of its own and one kubelet never deletes
another's pod cgroups. It is double-forked into a session of its own: neither Ctrl-C nor ccp exiting
reaches it; systemd-nspawn is the first process of a pid namespace of its own, so the machine dies with it,
as a VM with its hypervisor process (DIE_TOGETHER). Stopping kills by cgroup, so nothing of a machine outlives
it (local_teardown).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ccp.errors import CcpError, InfrastructureError
from ccp.providers.local_probes import _proc, cgroup_hierarchies, mounts_below, ssh_answers  # noqa: F401
from ccp.providers.local_teardown import MachineTeardown

CGROUP_PARENT = "ccp-local"       # also the alias that marks a bridge as made by ccp
# A node keeps the address recorded for its machine, so a conflict is a machine the state directory lost the record
# of (its address is not the one a fresh cluster would get) or another machine on a node's address.
CONFLICT_RESOLUTION = ("run ccp with the state directory that recorded these machines (its journal holds their addresses), "
                       "or free the address the other machine holds (or leave it out of spec.nodes.network.addresses)")
SSH_WAIT = (10.0, 15.0, 30.0)   # about one boot in 20 exits early or hangs: boot again, waiting longer each time
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_NSPAWN_API_VFS_WRITABLE": "1", "SYSTEMD_SECCOMP": "0"}
# The outer shell starts the launcher in the background (init adopts it) and prints its pid; the launcher
# joins the machine's cgroups and becomes systemd-nspawn.
OUTER = 'sh -c "$CCP_LAUNCH" ccp-launch "$@" >>"$CCP_LOG" 2>&1 </dev/null & echo $!'
LAUNCH = ('for d in $CCP_CGROUPS; do echo $$ >"$d/cgroup.procs" || { echo "ccp: cannot join cgroup $d" >&2; exit 97; }; '
          'done; unset CCP_CGROUPS CCP_LAUNCH CCP_LOG; exec "$@"')


# systemd-nspawn runs as the first process of a pid namespace of its own, so the kernel kills everything in the
# machine the moment it dies, as a VM dies with its hypervisor process (found on real nodes: a SIGKILLed
# systemd-nspawn left its machine running on, orphaned, while ccp called it stopped); unshare, the recorded
# launcher, takes nspawn with it (--kill-child). The new pid namespace needs a /proc of its own (nspawn reads
# its children there), hence a mount namespace, private so that nothing mounted in it reaches this host.
DIE_TOGETHER = ("unshare", "--pid", "--kill-child", "--mount-proc", "--propagation", "private", "--")


@dataclass(frozen=True)
class MachineSpec:
    cluster: str
    name: str
    role: str
    address: str          # interface form: 10.77.0.11/24
    gateway: str
    dns: tuple[str, ...]
    ssh_user: str
    authorized_key: str
    bridge: str

    def check(self) -> None:
        try:
            same_net = ipaddress.ip_address(self.gateway) in ipaddress.ip_interface(self.address).network
        except ValueError:
            same_net = False
        key = self.authorized_key.strip()
        bad = [what for what, ok in (("name", NAME.match(self.name)), ("SSH user", USER.match(self.ssh_user)),
                                     ("bridge name (at most 15 characters)", IFNAME.match(self.bridge)),
                                     ("address or gateway", same_net), ("authorized key", key and "\n" not in key)) if not ok]
        if bad:
            raise InfrastructureError(f"local machine {self.name!r}: invalid {', '.join(bad)}",
                                      "correct the node's settings in cluster.yaml")


def _run(argv: list[str], what: str, resolution: str) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise InfrastructureError(f"{what}: {((r.stderr or r.stdout).strip().splitlines() or ['exit %d' % r.returncode])[-1]}",
                                  resolution)
    return r


class LocalHost(MachineTeardown):
    def __init__(self, machines_dir: Path, rootfs_cache: Path, say=lambda msg: None):
        self.dir, self.cache, self.say = Path(machines_dir), Path(rootfs_cache), say

    # -- records and state

    def _read(self, name: str) -> dict | None:
        try:
            return json.loads((self.dir / name / "machine.json").read_text())
        except (OSError, ValueError):
            return None

    def _write(self, rec: dict) -> None:
        path = self.dir / rec["name"] / "machine.json"
        tmp = path.with_name(f".machine.json.{os.getpid()}.{time.monotonic_ns()}")
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(rec, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _records(self) -> list[dict]:
        names = sorted(p.name for p in self.dir.iterdir()) if self.dir.is_dir() else []
        return [r for r in map(self._read, names) if r]

    def machines(self, cluster: str) -> dict[str, dict]:
        return {r["name"]: {**r, "state": self._state(r)} for r in self._records() if r.get("cluster") == cluster}

    def status(self, cluster: str, name: str) -> str:
        rec = self._read(name)
        if rec is None or rec.get("cluster") != cluster or not rec.get("provisioned"):
            return "absent"
        return self._state(rec)

    def _state(self, rec: dict) -> str:
        return "running" if self._alive(rec) else "stopped"

    @staticmethod
    def _alive(rec: dict) -> bool:
        """The launcher (systemd-nspawn) of this record runs: same pid, same start time, not a zombie."""
        now = _proc(rec.get("launcher_pid"))
        return now is not None and now[0] != "Z" and now[1] == rec.get("launcher_start")

    # -- the root filesystem and the bridge

    def rootfs(self, packages: list[str]) -> Path:
        from ccp.providers import local_rootfs

        in_use = {Path(r["rootfs"]) for r in self._records() if r.get("rootfs")}
        return local_rootfs.build(self.cache, list(packages), self.say, in_use)

    def ensure_bridge(self, bridge: str, gateway_cidr: str) -> bool:
        fix = f"look at `ip addr show {bridge}`: remove or rename what is in the way, or choose spec.local.bridge"
        changed = not Path(f"/sys/class/net/{bridge}").exists()
        if changed:
            _run(["ip", "link", "add", bridge, "type", "bridge"], f"could not create the host bridge {bridge}", fix)
            _run(["ip", "link", "set", bridge, "alias", CGROUP_PARENT], f"could not label the bridge {bridge}", fix)
        elif not Path(f"/sys/class/net/{bridge}/bridge").exists():
            raise InfrastructureError(f"the host interface {bridge} exists and is not a bridge", fix)
        info = json.loads(_run(["ip", "-j", "addr", "show", "dev", bridge], f"could not read {bridge}", fix).stdout)[0]
        want = ipaddress.ip_interface(gateway_cidr)
        if want not in {ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}") for a in info.get("addr_info", [])}:
            _run(["ip", "addr", "add", str(want), "dev", bridge], f"could not give the bridge {bridge} {want}", fix)
            changed = True
        if "UP" not in info.get("flags", []):
            _run(["ip", "link", "set", bridge, "up"], f"could not bring the bridge {bridge} up", fix)
            changed = True
        return changed

    def remove_bridge_if_unused(self, bridge: str) -> bool:
        """Only a bridge ccp made (it carries ccp's alias), with no machine recorded on it and no port left."""
        base = Path(f"/sys/class/net/{bridge}")
        if not (base / "bridge").exists() or any(r.get("bridge") == bridge for r in self._records()):
            return False
        if (base / "ifalias").read_text().strip() != CGROUP_PARENT or any((base / "brif").iterdir()):
            return False
        _run(["ip", "link", "del", bridge], f"could not remove the bridge {bridge}", f"remove it by hand: ip link del {bridge}")
        return True

    # -- boot

    def conflicts(self, specs: list[MachineSpec], ignore: tuple[str, ...] = ()) -> list[str]:
        """What stops these machines from being booted as specified: an existing one with another address or
        bridge, or an address another machine holds on the same bridge. Checked for all before any boots
        (found on real nodes, when growing the control planes still shifted the workers' addresses: a new
        control plane booted on a worker's address while the check refused the worker). Nodes now keep the
        address recorded for them, so what is left is a genuine clash: a machine not of this cluster (or not
        yet removed) on the address, or a machine the state directory has no record of."""
        records = {r["name"]: r for r in self._records()}
        holders: dict[tuple, list[str]] = {}   # ``ignore``: machines about to be removed (they give their address up)
        for r in records.values():
            if r["name"] not in ignore:
                holders.setdefault((r.get("bridge"), r.get("address")), []).append(r["name"])
        found = []
        for spec in specs:
            address = str(ipaddress.ip_interface(spec.address).ip)
            rec = records.get(spec.name)
            if rec is not None and rec.get("cluster") == spec.cluster:
                differ = [f"{k} {rec.get(k)} (cluster.yaml: {v})" for k, v in
                          {"address": address, "bridge": spec.bridge}.items() if rec.get(k) != v]
                if differ:
                    found.append(f"{spec.name} exists with {', '.join(differ)}")
            others = [h for h in holders.get((spec.bridge, address), []) if h != spec.name]
            if others:
                found.append(f"{spec.name} would take {address}, which machine {others[0]} holds")
        return found

    def boot_many(self, specs: list[MachineSpec], rootfs: Path) -> dict[str, dict]:
        from concurrent.futures import ThreadPoolExecutor

        found = self.conflicts(specs)
        if found:
            raise InfrastructureError(f"{len(found)} local machine(s) cannot be booted as cluster.yaml says ({found[0]}): "
                                      "nothing was booted", CONFLICT_RESOLUTION, found)

        with ThreadPoolExecutor(max_workers=max(1, min(16, len(specs)))) as pool:
            futures = {s.name: pool.submit(self.boot, s, rootfs) for s in specs}
        failed = {n: f.exception() for n, f in futures.items() if f.exception() is not None}
        if len(failed) == 1 or any(not isinstance(e, CcpError) for e in failed.values()):
            raise next(iter(failed.values()))
        if failed:   # the machines that did boot stay up: a rerun boots only the others
            first = next(iter(failed.values()))
            raise InfrastructureError(f"{len(failed)} of {len(specs)} local machines did not boot: {', '.join(failed)}",
                                      first.resolution, [f"{n}: {e.message}" for n, e in failed.items()])
        return {n: f.result() for n, f in futures.items()}

    def boot(self, spec: MachineSpec, rootfs: Path) -> dict:
        """absent: create and start; stopped: start; running: nothing. Returns once sshd answers."""
        spec.check()
        rec = self._read(spec.name)
        if rec is not None and rec.get("cluster") != spec.cluster:
            raise InfrastructureError(f"a local machine named {spec.name} exists and belongs to cluster {rec.get('cluster')}",
                                      "give this cluster's nodes other names, or destroy the other cluster first")
        if rec is not None and not rec.get("provisioned"):   # half made by an interrupted run: made anew
            self._halt(rec, grace=0)
            self._remove_dir(spec.name)
            rec = None
        if rec is not None:
            want = {"address": str(ipaddress.ip_interface(spec.address).ip), "bridge": spec.bridge}
            differ = [f"{k} {rec.get(k)} (cluster.yaml: {v})" for k, v in want.items() if rec.get(k) != v]
            if differ:
                raise InfrastructureError(f"the local machine {spec.name} exists with {', '.join(differ)}",
                                          "put the old values back, or remove the node and add it again")
            if self._alive(rec):
                return rec
        if not Path(f"/sys/class/net/{spec.bridge}/bridge").exists():
            raise InfrastructureError(f"the host bridge {spec.bridge} for {spec.name} does not exist",
                                      "create it first (ensure_bridge), then boot the machine")
        rec = rec or self._create(spec, Path(rootfs))
        if not (Path(rec["rootfs"]) / ".ccp-complete").exists():
            raise InfrastructureError(f"the root filesystem {rec['rootfs']} of machine {spec.name} is gone",
                                      "remove the node and add it again (or destroy and install), so it is made anew")
        for attempt, wait in enumerate(SSH_WAIT, 1):
            self._halt(rec, grace=0)   # whatever an earlier run or attempt left: processes, mounts, cgroups
            self._mount(rec)
            t0 = time.monotonic()
            self._launch(rec, attempt)
            outcome = self._wait_for_ssh(rec, wait)
            if outcome == "ok":
                self._note_running(rec, time.monotonic() - t0)
                return rec
            self.say(f"{spec.name}: {outcome} (boot {attempt} of {len(SSH_WAIT)})")
        self._halt(rec, grace=0)
        raise InfrastructureError(f"local machine {spec.name} gave no SSH on {rec['address']}:22 in {len(SSH_WAIT)} boots",
                                  f"see its console in {rec['console']}; the machine is kept (stopped), "
                                  "and --resume boots it again")

    def _create(self, spec: MachineSpec, rootfs: Path) -> dict:
        from ccp.providers import local_rootfs

        d = self.dir / spec.name
        self._remove_dir(spec.name)   # a directory without a record: an interrupted create
        d.mkdir(parents=True, mode=0o700)
        rec = {"name": spec.name, "cluster": spec.cluster, "role": spec.role,
               "address": str(ipaddress.ip_interface(spec.address).ip), "interface": spec.address, "gateway": spec.gateway,
               "dns": list(spec.dns), "bridge": spec.bridge,
               "ssh_user": spec.ssh_user, "rootfs": str(rootfs), "machine_id": os.urandom(16).hex(), "dir": str(d),
               "console": str(d / "console.log"), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "provisioned": False,
               "pid": None, "launcher_pid": None, "launcher_start": None, "veth": None, "hostKey": None}
        self._write(rec)   # first: whatever follows belongs to someone
        for sub in ("upper", "work", "merged", "containerd", "etcd"):
            (d / sub).mkdir(mode=0o755)
        self._mount(rec)
        rec.update(hostKey=local_rootfs.personalize(d / "merged", spec, rec["machine_id"]), provisioned=True)
        self._write(rec)
        return rec

    def _mount(self, rec: dict) -> None:
        d = Path(rec["dir"])
        if str(d / "merged") not in mounts_below(d / "merged"):
            opts = f"lowerdir={rec['rootfs']},upperdir={d / 'upper'},workdir={d / 'work'}"
            _run(["mount", "-t", "overlay", "overlay", "-o", opts, str(d / "merged")],
                 f"could not mount the overlay of machine {rec['name']}", "check the kernel's overlay support (preflight)")

    def _cgroups(self, name: str) -> list[Path]:
        return [h / CGROUP_PARENT / name for h in cgroup_hierarchies()]

    def _launch(self, rec: dict, attempt: int) -> None:
        name, d = rec["name"], Path(rec["dir"])
        for cg in self._cgroups(name):
            for _ in range(20):   # ccp-local may vanish in between: another machine's halt removes it when empty
                try:
                    for level in (cg.parent, cg):
                        level.mkdir(exist_ok=True)
                        for knob in ("cpuset.cpus", "cpuset.mems"):   # a new cpuset is empty and takes no process
                            if (level / knob).exists() and not (level / knob).read_text().strip():
                                (level / knob).write_text((level.parent / knob).read_text())
                    break
                except FileNotFoundError:
                    time.sleep(0.05)
        # --console=read-only: the machine's console (systemd's boot status) goes to console.log
        argv = [*DIE_TOGETHER, "systemd-nspawn", "-b", "-D", str(d / "merged"), "-M", name, f"--uuid={rec['machine_id']}", "--register=no",
                "--keep-unit", "--console=read-only", f"--network-bridge={rec['bridge']}", "--capability=all",
                "--resolv-conf=off", "--timezone=off", "--link-journal=no", "--bind=/dev/kmsg",
                f"--bind={d / 'containerd'}:/var/lib/containerd", f"--bind={d / 'etcd'}:/var/lib/etcd", "systemd.show_status=true"]
        with open(d / "console.log", "a") as log:
            log.write(f"\n--- ccp: boot {attempt} of {name} at {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n")
        env = {**ENV, "CCP_CGROUPS": " ".join(map(str, self._cgroups(name))), "CCP_LAUNCH": LAUNCH,
               "CCP_LOG": str(d / "console.log")}
        r = subprocess.run(["sh", "-c", OUTER, "ccp-outer", *argv], env=env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, start_new_session=True, timeout=30)
        pid = int(r.stdout.strip())
        rec.update(launcher_pid=pid, launcher_start=(_proc(pid) or ("", None))[1], pid=None, veth=None)
        self._write(rec)

    def _wait_for_ssh(self, rec: dict, seconds: float) -> str:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            if not self._alive(rec):
                return f"systemd-nspawn exited after {time.monotonic() - t0:.1f}s"
            if ssh_answers(rec["address"]):
                return "ok"
            time.sleep(0.1)
        return f"no SSH on {rec['address']}:22 within {seconds:.0f}s"

    @staticmethod
    def _leader(rec: dict) -> int | None:
        """The machine's init as the host sees it: the launcher's descendant whose innermost pid is 1, other than
        systemd-nspawn (the first process of the pid namespace around the machine's, see DIE_TOGETHER)."""
        todo = [rec["launcher_pid"]] if rec.get("launcher_pid") else []
        for _ in range(5):
            found = []
            for pid in todo:
                try:
                    innermost = Path(f"/proc/{pid}/status").read_text().partition("NSpid:")[2].splitlines()[0].split()[-1]
                    if innermost == "1" and Path(f"/proc/{pid}/comm").read_text().strip() != "systemd-nspawn":
                        return pid
                    found += [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
                except (OSError, IndexError):
                    continue
            todo = found
        return None

    def _note_running(self, rec: dict, seconds: float) -> None:
        leader, veth = self._leader(rec), None
        try:   # the host end of the machine's veth: the interface whose index is host0's peer index
            iflink = Path(f"/proc/{leader}/root/sys/class/net/host0/iflink").read_text().strip()
            veth = next((p.name for p in Path("/sys/class/net").iterdir() if (p / "ifindex").read_text().strip() == iflink), None)
        except OSError:
            pass
        rec.update(pid=leader, veth=veth, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"), boot_seconds=round(seconds, 2))
        self._write(rec)

    def preflight(self, node_count: int, memory_mib_needed: int, cidr: str, gateway: str,
                  bridge: str | None = None) -> list[tuple[str, str, str]]:
        """[(check, "ok"|"warn"|"fail", "what -> what to do")] for running ``node_count`` machines here.
        ``bridge``: this cluster's bridge, which may hold ``cidr`` already (else: any bridge holding ``gateway``)."""
        from ccp.providers import local_rootfs

        return local_rootfs.host_checks(node_count, memory_mib_needed, cidr, gateway, bridge)
