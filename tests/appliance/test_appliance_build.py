"""The appliance, built for real and booted under QEMU (TCG: no KVM here).

One build per session through `ccp appliance build` (the real command, as a subprocess): the OVA's
layout and manifest, its OVF against DSP8023, a rebuild that reuses every cached step, then a boot
with an OVF environment ISO (the `iso` transport) carrying the properties, checked over SSH through
a forwarded port: host name, the static address, the key, password SSH off, the password (given on
stdin to sudo) working, `ccp version` inside — and the password nowhere in clear on the disk the
guest wrote, nor on its console.

Slow (a few minutes; the root filesystem is cached in CCP_APPLIANCE_CACHE, default .cache/appliance in
the checkout): marked `appliance`; `pytest -m "not appliance"` leaves it out.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.unit.test_appliance import ovf_schema

pytestmark = [pytest.mark.appliance, pytest.mark.slow, pytest.mark.timeout(1800)]

SECRET = "Planted-Appliance-Pw-93"
GUEST_IP = "10.0.2.50"          # QEMU's user network is 10.0.2.0/24; DHCP would hand out .15
NEEDED = {"mmdebstrap": "mmdebstrap", "qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
          "xorriso": "xorriso", "extlinux": "extlinux", "sfdisk": "fdisk"}


def _needs() -> None:
    missing = sorted(pkg for tool, pkg in NEEDED.items() if shutil.which(tool) is None)
    reason = (f"the appliance suite needs Debian packages {' '.join(missing)} (hack/setup.sh installs them)" if missing
              else "the appliance build needs root" if os.geteuid() != 0 else "")
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def _ccp(*args, timeout=1500) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "ccp", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    _needs()
    cache = Path(os.environ.get("CCP_APPLIANCE_CACHE", ROOT / ".cache" / "appliance"))
    out = tmp_path_factory.mktemp("appliance-out")
    bundle = _bundle(tmp_path_factory.mktemp("bundle"))
    args = ("appliance", "build", "--out", out, "--cache", cache, "--disk-gb", "8", "--bundle", bundle)
    first = _ccp(*args)
    assert first.returncode == 0, first.stdout + first.stderr
    second = _ccp(*args)
    assert second.returncode == 0, second.stdout + second.stderr
    from ccp import __version__

    return {"ova": out / f"ccp-appliance-{__version__}.ova", "first": first, "second": second, "out": out,
            "bundle": bundle}


def _bundle(tmp: Path) -> Path:
    """A synthetic offline bundle for the example config (one small file per item, as in tests/unit)."""
    from ccp.bundle import archive
    from ccp.bundle.manifest import items
    from tests.unit.test_bundle import fill

    from ccp.config.load import load
    from tests.conftest import example_data, write_config

    config = load(write_config(tmp / "cluster.yaml", example_data()), defer_secrets=True).config
    needed = items(config)
    source = tmp / "mirror"
    source.mkdir()
    fill(source, needed)
    archive.create(needed, source, tmp / "bundle.tar")
    return tmp / "bundle.tar"


def test_ova_layout_manifest_schema_and_progress(built):
    ova_path = built["ova"]
    with tarfile.open(ova_path) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names[0].endswith(".ovf") and names[1].endswith(".mf") and names[2].endswith(".vmdk") and len(names) == 3
        mf = dict(line.split("= ") for line in tar.extractfile(members[1]).read().decode().splitlines())
        for m in (members[0], members[2]):
            assert mf[f"SHA256({m.name})"] == hashlib.sha256(tar.extractfile(m).read()).hexdigest()
        descriptor = tar.extractfile(members[0]).read()
        vmdk_head = tar.extractfile(members[2]).read(65536)
    assert ova_path.read_bytes()[257:262] == b"ustar"
    assert vmdk_head[:4] == b"KDMV" and b'createType="streamOptimized"' in vmdk_head
    errors = list(ovf_schema().iter_errors(descriptor.decode()))
    assert errors == [], [e.reason for e in errors[:3]]
    err = built["first"].stderr
    for step in ("tools", "rootfs", "wheels", "assemble", "image", "vmdk", "ova"):
        assert f" {step} " in err, err
    assert "wrote " in built["first"].stdout and " in " in built["first"].stdout


def test_rebuild_reuses_the_cached_root_filesystem_and_disk(built):
    err = built["second"].stderr
    for step in ("rootfs", "assemble", "image", "vmdk"):
        line = next(ln for ln in err.splitlines() if f" {step} " in ln)
        assert "reused" in line, line
    assert "4 steps reused" in built["second"].stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _ssh(port: int, key, commands: list[tuple[str, str | None]], deadline: float):
    import asyncssh

    while True:
        try:
            conn = await asyncssh.connect("127.0.0.1", port, username="ccp", client_keys=[key], known_hosts=None,
                                          connect_timeout=10, login_timeout=20)
            break
        except (OSError, asyncssh.Error, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(3)
    async with conn:
        return [await conn.run(cmd, input=stdin, check=False) for cmd, stdin in commands]


def test_boots_under_qemu_and_applies_the_ovf_environment(built, tmp_path):
    import asyncssh

    from ccp.appliance import ovf

    work = tmp_path
    with tarfile.open(built["ova"]) as tar:
        vmdk_member = tar.getmembers()[2]
        tar.extract(vmdk_member, work, filter="data")
    overlay = work / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(work / vmdk_member.name), "-F", "vmdk",
                    str(overlay)], check=True)
    key = asyncssh.generate_private_key("ssh-ed25519", comment="appliance-test")
    pub = key.export_public_key().decode().strip()
    envdir = work / "env"
    envdir.mkdir()
    (envdir / "ovf-env.xml").write_bytes(ovf.environment({
        "hostname": "ccp-lab-01", "ip": f"{GUEST_IP}/24", "gateway": "10.0.2.2", "dns": "10.0.2.3",
        "ntp": "10.0.2.2", "ssh_authorized_key": pub, "admin_password": SECRET}))
    iso = work / "env.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "OVF ENV", "-J", "-R", "-o", str(iso), str(envdir)],
                   check=True)
    port = _free_port()
    serial = work / "serial.log"
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-accel", "tcg", "-m", "1536", "-smp", "2", "-display", "none", "-monitor", "none",
        "-serial", f"file:{serial}", "-no-reboot",
        "-device", "pvscsi,id=scsi0", "-drive", f"file={overlay},if=none,id=disk0,format=qcow2",
        "-device", "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0",
        "-drive", f"file={iso},media=cdrom,if=ide,readonly=on",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{port}-{GUEST_IP}:22", "-device", "vmxnet3,netdev=net0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        results = asyncio.run(_ssh(port, key, [
            ("hostname", None),
            ("ip -4 -o addr show scope global", None),
            ("cat ~/.ssh/authorized_keys", None),
            ("ccp version", None),
            ("sudo -S -p '' sshd -T", SECRET + "\n"),      # the password works for sudo: it was hashed right
            ("cat /etc/motd", None),
            ("sudo -S -p '' systemctl is-active ccp-firstboot", SECRET + "\n"),
            ("sha256sum /var/lib/ccp/bundles/bundle.tar", None),
            ("terraform version" if shutil.which("terraform") else "true", None),
        ], time.monotonic() + 420))
        hostname, addr, keys, version, sshd, motd, unit, bundle, terraform = results
        assert hostname.stdout.strip() == "ccp-lab-01"
        assert f"inet {GUEST_IP}/24" in addr.stdout
        assert keys.stdout.strip() == pub
        assert version.exit_status == 0 and version.stdout.startswith("ccp "), version.stderr
        assert sshd.exit_status == 0, sshd.stderr
        assert "passwordauthentication no" in sshd.stdout and "permitrootlogin no" in sshd.stdout
        assert f"{GUEST_IP}/24" in motd.stdout and "ccp install --config cluster.yaml" in motd.stdout
        assert unit.stdout.strip() == "active"
        assert bundle.stdout.split()[0] == hashlib.sha256(built["bundle"].read_bytes()).hexdigest()
        assert terraform.exit_status == 0, terraform.stderr
        asyncio.run(_ssh(port, key, [("sudo -S -p '' systemctl poweroff", SECRET + "\n")], time.monotonic() + 30))
        qemu.wait(timeout=120)
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()
    console = serial.read_bytes()
    assert b"ccp-firstboot: OVF environment from iso" in console, console[-3000:]
    assert SECRET.encode() not in console
    # Every block the guest wrote (journal, shadow, logs) is in the overlay, uncompressed: the host name
    # it wrote is found there (the scan sees the guest's writes), the password is not.
    assert _count(overlay, b"ccp-lab-01") > 0
    assert _count(overlay, SECRET.encode()) == 0


def _count(path: Path, needle: bytes) -> int:
    """Occurrences of ``needle`` in a (sparse) file, read in overlapping chunks."""
    found, tail = 0, b""
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(8 << 20), b""):
            buf = tail + chunk
            found += buf.count(needle)
            tail = buf[-(len(needle) - 1):]
    return found
