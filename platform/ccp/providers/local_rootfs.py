"""The root filesystem every local machine boots from: Debian bookworm built once with mmdebstrap.

It is the local analogue of a VM template: the packages the caller asks for, plus what makes a full
systemd system run as a systemd-nspawn machine on this host (units baked in below, each saying why).
Nothing in it belongs to one machine: no machine id, no SSH host keys, no address; ``personalize``
writes those into each machine's overlay before its first boot. ``host_checks`` is the preflight: what
this host must provide to build the root filesystem and boot machines from it.

Cached under ``<cache>/<key>``, the key a digest of everything that goes in (suite, packages, the
mmdebstrap version, this host's apt sources, the baked-in files and CHANGES). A build goes to
``<key>.partial`` and is renamed when complete, so a killed build leaves no half cache.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from ccp.errors import InfrastructureError, PreflightError

SUITE = "bookworm"
CHANGES = 1   # bump when the recipe changes in a way the baked-in files below do not show

# Documentation and translations stay out (the copyright files stay in), as in the appliance.
DPKG_OPTIONS = ["path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-include=/usr/share/locale/locale.alias"]

CGROUP_RW = """#!/bin/sh
# systemd-nspawn mounts the cgroup v1 controllers read-only; kubelet and containerd create cgroups in them.
for d in /sys/fs/cgroup/*/; do
  d=${d%/}
  mountpoint -q "$d" || continue
  mount -o remount,bind,rw "$d" || echo "ccp: could not make $d writable" >&2
done
exit 0
"""

NETWORK = """#!/bin/sh
# The machine's address, set with ip: systemd-networkd would wait forever for udev, which a container lacks.
set -e
. /etc/ccp/network.env
ip link set lo up
ip link set "$INTERFACE" up
ip addr replace "$ADDRESS" dev "$INTERFACE"
ip route replace default via "$GATEWAY" dev "$INTERFACE"
"""

UNITS = {
    "ccp-cgroup-rw.service": """[Unit]
Description=ccp: cgroup controllers writable (systemd-nspawn mounts them read-only)
DefaultDependencies=no
Before=sysinit.target containerd.service kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ccp-cgroup-rw

[Install]
WantedBy=sysinit.target
""",
    "ccp-network.service": """[Unit]
Description=ccp: address and default route on host0
DefaultDependencies=no
Wants=network.target
Before=network.target network-online.target ssh.service containerd.service
ConditionPathExists=/etc/ccp/network.env

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/ccp-network

[Install]
WantedBy=multi-user.target network-online.target
""",
}

SSHD = """# ccp: key-only logins; each machine has its own ed25519 host key, made when the machine is created
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""

# Services left off: the load balancers' nginx and keepalived (ccp enables them where they belong).
DISABLED = ["nginx.service", "keepalived.service"]
# Units that cannot work in a container, or reach for a network that is not there, and only fail or wait.
MASKED = ["systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
          "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
          "console-getty.service", "apt-daily.timer", "apt-daily-upgrade.timer"]
ENABLED = {"sysinit.target": ["ccp-cgroup-rw.service"], "multi-user.target": ["ccp-network.service"],
           "network-online.target": ["ccp-network.service"]}


def apt_sources() -> list[Path]:
    """This host's apt sources, as files mmdebstrap reads (one-line and deb822 forms)."""
    files = [Path("/etc/apt/sources.list")] if Path("/etc/apt/sources.list").is_file() else []
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(p for p in d.iterdir() if p.suffix in (".list", ".sources") and p.is_file())
    return [p for p in files if any(ln.strip() and not ln.lstrip().startswith("#")
                                    for ln in p.read_text().splitlines())]


def mmdebstrap_version() -> str:
    try:
        return subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        raise PreflightError("mmdebstrap is not installed; the local machines' root filesystem is built with it",
                             "install it: apt-get install mmdebstrap") from None


def recipe_files() -> dict[str, tuple[str, int]]:
    """Path inside the root filesystem -> (content, mode): what is baked in on top of the packages."""
    files = {"usr/local/sbin/ccp-cgroup-rw": (CGROUP_RW, 0o755), "usr/local/sbin/ccp-network": (NETWORK, 0o755),
             "etc/ssh/sshd_config.d/ccp.conf": (SSHD, 0o644)}
    files.update({f"etc/systemd/system/{name}": (text, 0o644) for name, text in UNITS.items()})
    return files


def cache_key(packages: list[str], sources: list[Path], files: dict) -> str:
    inputs = [SUITE, list(packages), mmdebstrap_version(), [(str(p), p.read_text()) for p in sources],
              sorted(files.items()), DISABLED, MASKED, ENABLED, DPKG_OPTIONS, CHANGES]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()[:16]


def unmount_below(path: Path) -> None:
    """Unmount what a killed mmdebstrap left mounted below ``path``, deepest first: deleting a tree
    with /dev still bound into it would delete the host's /dev."""
    root = str(path.resolve())
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mnt in sorted((m for m in points if m == root or m.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], capture_output=True)


def remove_tree(path: Path) -> None:
    if path.exists() or path.is_symlink():
        unmount_below(path)
        shutil.rmtree(path, ignore_errors=True)


def build(cache: Path, packages: list[str], say=lambda msg: None, in_use: set[Path] = frozenset()) -> Path:
    """The cached root filesystem for ``packages``, built first if needed. ``in_use``: older builds that
    machines still boot from, kept; other older builds are removed once a new one is complete."""
    import fcntl

    if shutil.which("mmdebstrap") is None:
        raise PreflightError("mmdebstrap is not installed; the local machines' root filesystem is built with it",
                             "install it: apt-get install mmdebstrap")
    sources = apt_sources()
    if not sources:
        raise PreflightError("this host has no apt sources for mmdebstrap to build the machines' root filesystem from",
                             "configure a Debian mirror in /etc/apt/sources.list.d/ (apt-get update must work)")
    files = recipe_files()
    key = cache_key(packages, sources, files)
    final = cache / key
    if (final / ".ccp-complete").exists():
        return final
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:   # another build (or the mmdebstrap of a killed one) runs: wait for it
            say(f"waiting for another build of the machines' root filesystem in {cache} to end")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / ".ccp-complete").exists():
            return final
        tmp = cache / f"{key}.partial"
        remove_tree(tmp)
        say(f"building the machines' root filesystem with mmdebstrap ({len(packages)} packages; about a minute)")
        t0 = time.monotonic()
        log = cache / f"{key}.log"
        argv = ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(packages),
                *[f"--dpkgopt={o}" for o in DPKG_OPTIONS], SUITE, str(tmp), *map(str, sources)]
        with open(log, "w") as out:
            # mmdebstrap holds the lock too: should ccp be killed, no other build starts while it still writes
            r = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, pass_fds=(lock.fileno(),))
        if r.returncode != 0:
            remove_tree(tmp)
            tail = " | ".join(log.read_text().strip().splitlines()[-3:])[-400:]
            raise InfrastructureError(f"mmdebstrap could not build the machines' root filesystem (exit {r.returncode}): {tail}",
                                      f"see {log}; check that apt-get update works on this host, then rerun")
        customize(tmp, files)
        (tmp / ".ccp-complete").write_text(json.dumps({"packages": packages, "seconds": round(time.monotonic() - t0, 1)}) + "\n")
        remove_tree(final)   # a directory without the mark of completion is not a cache
        os.replace(tmp, final)
        log.unlink(missing_ok=True)
        say(f"root filesystem {key} built in {time.monotonic() - t0:.0f}s")
        # Older builds go (each is ~350 MB), but for those that machines boot from: recorded ones, and
        # any that a running machine has mounted (machines of another machines directory, say).
        keep, mounted = {p.resolve() for p in in_use}, Path("/proc/self/mountinfo").read_text()
        for old in cache.iterdir():
            if old.is_dir() and old != final and old.resolve() not in keep and f"lowerdir={old}," not in mounted:
                remove_tree(old)
    return final


def customize(root: Path, files: dict[str, tuple[str, int]]) -> None:
    for rel, (text, mode) in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    units = root / "etc/systemd/system"
    for link in units.glob("*.wants/*"):
        if link.name in DISABLED:
            link.unlink()
    for name in MASKED:
        (units / name).unlink(missing_ok=True)
        (units / name).symlink_to("/dev/null")
    for target, names in ENABLED.items():
        (units / f"{target}.wants").mkdir(exist_ok=True)
        for name in names:
            link = units / f"{target}.wants" / name
            link.unlink(missing_ok=True)
            link.symlink_to(f"/etc/systemd/system/{name}")
    # One root filesystem, many machines: nothing that must differ between them.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    for d in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for p in (root / d).glob("*"):
            if p.is_file():
                p.unlink()


# -- one machine's own files, written into its overlay before its first boot


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    if path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def personalize(root: Path, spec, machine_id: str) -> str:
    """Identity, address, the SSH account and host key of one machine (``root``: its merged overlay).
    Returns the host's public key ("ssh-ed25519 AAAA…"), known before anyone connects."""
    import ipaddress

    ip = ipaddress.ip_interface(spec.address).ip
    _write(root / "etc/machine-id", machine_id + "\n", 0o444)
    _write(root / "etc/hostname", spec.name + "\n")
    _write(root / "etc/hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\t{spec.name}\n")
    _write(root / "etc/resolv.conf", "".join(f"nameserver {d}\n" for d in spec.dns))
    _write(root / "etc/ccp/network.env", f"INTERFACE=host0\nADDRESS={spec.address}\nGATEWAY={spec.gateway}\n")
    user = spec.ssh_user
    if not any(ln.split(":")[0] == user for ln in (root / "etc/passwd").read_text().splitlines()):
        _chroot(root, ["useradd", "--create-home", "--shell", "/bin/bash", "--password", "*", user])
    entry = next(ln.split(":") for ln in (root / "etc/passwd").read_text().splitlines() if ln.split(":")[0] == user)
    uid, gid, home = int(entry[2]), int(entry[3]), root / entry[5].lstrip("/")
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    _write(ssh / "authorized_keys", spec.authorized_key.strip() + "\n", 0o600)
    for p in (ssh, ssh / "authorized_keys"):
        os.chown(p, uid, gid)
    _write(root / "etc/sudoers.d/ccp", f"{user} ALL=(ALL:ALL) NOPASSWD: ALL\n", 0o440)
    key = root / "etc/ssh/ssh_host_ed25519_key"
    if not key.exists():
        _chroot(root, ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{spec.name}", "-f", "/etc/ssh/ssh_host_ed25519_key"])
    return " ".join(key.with_suffix(".pub").read_text().split()[:2])


def _chroot(root: Path, argv: list[str]) -> None:
    r = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    if r.returncode != 0:
        raise InfrastructureError(f"setting up machine root {root}: {argv[0]} failed: {r.stderr.strip()[-300:]}",
                                  "check the root filesystem cache (delete it to have it built again) and rerun")


# -- preflight: what this host must provide to build and boot machines


def host_checks(node_count: int, memory_mib_needed: int, cidr: str, gateway: str,
                bridge: str | None = None) -> list[tuple[str, str, str]]:
    """[(check, "ok"|"warn"|"fail", "what -> what to do")]. Loads missing kernel modules and raises the
    inotify instance limit when it can, and says so. ``bridge``: this cluster's, where its subnet may be already."""
    out = [("root", "ok", "running as root") if os.geteuid() == 0 else
           ("root", "fail", "local machines need root (systemd-nspawn, mounts, bridges) -> run ccp as root (sudo)")]
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap")):
        out.append((tool, "ok", shutil.which(tool)) if shutil.which(tool) else
                   (tool, "fail", f"{tool} is not installed -> apt-get install {pkg}"))
    out.append(_kernel_check())
    avail = next((int(ln.split()[1]) // 1024 for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemAvailable:")), 0)
    out.append(("memory", "ok" if avail >= memory_mib_needed * 1.2 else "warn" if avail >= memory_mib_needed else "fail",
                f"{avail} MiB available, {node_count} machines need about {memory_mib_needed} MiB"
                + ("" if avail >= memory_mib_needed * 1.2 else " -> free memory or run fewer nodes")))
    out.append(_address_check(cidr, gateway, bridge))
    out.append(_inotify_check(node_count))
    return out


def _kernel_check() -> tuple[str, str, str]:
    """overlay, bridge, veth, br_netfilter: present (built in or loaded), or loaded now with modprobe."""
    def present(mod: str) -> bool:
        if mod == "overlay":
            return any(ln.split()[-1] == "overlay" for ln in Path("/proc/filesystems").read_text().splitlines())
        if mod == "br_netfilter" and Path("/proc/sys/net/bridge").exists():
            return True
        if Path(f"/sys/module/{mod}").exists():
            return True
        builtin = Path(f"/lib/modules/{os.uname().release}/modules.builtin")
        if builtin.exists() and f"/{mod}.ko" in builtin.read_text():
            return True
        try:
            import gzip

            with gzip.open("/proc/config.gz", "rt") as f:
                return f"CONFIG_{mod.upper()}=y\n" in f.read()
        except OSError:
            return False

    loaded, missing = [], []
    for mod in ("overlay", "bridge", "veth", "br_netfilter"):
        if present(mod):
            continue
        if shutil.which("modprobe") and subprocess.run(["modprobe", mod], capture_output=True).returncode == 0:
            loaded.append(mod)
        else:
            missing.append(mod)
    if missing:
        return ("kernel", "fail", f"kernel features missing: {', '.join(missing)} -> load them (modprobe "
                                  f"{' '.join(missing)}; package kmod) or use a kernel that has them")
    return ("kernel", "ok", "overlay, bridge, veth, br_netfilter" + (f" (loaded now: {', '.join(loaded)})" if loaded else ""))


def _address_check(cidr: str, gateway: str, bridge: str | None) -> tuple[str, str, str]:
    """The machines' subnet must not be reachable through another interface of the host; this cluster's
    bridge from an earlier run is fine (unnamed: a bridge that holds the gateway address)."""
    net, gw = ipaddress.ip_network(cidr, strict=False), ipaddress.ip_address(gateway)
    clash = []
    try:
        routes = json.loads(subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True).stdout or "[]")
        addrs = json.loads(subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True).stdout or "[]")
    except (OSError, ValueError):
        return ("addresses", "warn", "could not read this host's routes (ip -j) -> check that iproute2 is installed")
    ours = {bridge} if bridge else {a["ifname"] for a in addrs if Path(f"/sys/class/net/{a['ifname']}/bridge").exists()
                                    and any(i.get("local") == str(gw) for i in a.get("addr_info", []))}
    for r in routes:
        if r.get("dst", "default") != "default" and r.get("dev") not in ours:
            try:
                if ipaddress.ip_network(r["dst"], strict=False).overlaps(net):
                    clash.append(f"{r['dst']} on {r.get('dev')}")
            except ValueError:
                continue
    for a in addrs:
        for i in a.get("addr_info", []):
            if a["ifname"] not in ours and i.get("family") == "inet" and ipaddress.ip_address(i["local"]) in net:
                clash.append(f"{i['local']} on {a['ifname']}")
    if clash:
        return ("addresses", "fail", f"{net} is already in use on this host: {', '.join(sorted(set(clash)))} -> "
                                     "choose another spec.nodes.network.cidr for the local machines")
    return ("addresses", "ok", f"{net} is free" + (f" (bridge {', '.join(sorted(ours))} holds {gw} already)" if ours else ""))


def _inotify_check(node_count: int) -> tuple[str, str, str]:
    """fs.inotify.max_user_instances is shared by every machine (the 7th kubelet fails at 128): raised, and said."""
    path, want = Path("/proc/sys/fs/inotify/max_user_instances"), max(128, 128 * node_count)
    have = int(path.read_text())
    if have >= want:
        return ("inotify", "ok", f"fs.inotify.max_user_instances = {have}")
    try:
        path.write_text(str(want))
    except OSError:
        return ("inotify", "fail", f"fs.inotify.max_user_instances is {have}; {node_count} machines need about {want} -> "
                                   f"sysctl -w fs.inotify.max_user_instances={want}")
    return ("inotify", "warn", f"raised fs.inotify.max_user_instances from {have} to {want} for {node_count} machines "
                               f"(until reboot) -> to keep it: echo fs.inotify.max_user_instances={want} > /etc/sysctl.d/90-ccp.conf")
