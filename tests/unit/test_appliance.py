"""The appliance's pieces that need no build: the first-boot logic, the OVF descriptor against the DMTF
schema, the OVA layout and manifest, and the build's step events as ccp shows them."""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import pytest

from ccp.appliance import ova, ovf
from ccp.errors import ConfigError
from tests.conftest import ROOT

SCHEMA_DIR = ROOT.parent / "shared" / "ovf-schema"
SECRET = "Planted-Adm1n-Secret"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0kK8b0dW8cVnqk3LxuJmP6Gmr0tU5g8eTz2G7rYnX test@ccp"


def firstboot():
    path = ROOT / "appliance/rootfs/usr/local/sbin/ccp-firstboot"
    loader = importlib.machinery.SourceFileLoader("ccp_firstboot", str(path))
    spec = importlib.util.spec_from_loader("ccp_firstboot", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def ovf_schema():
    xmlschema = pytest.importorskip("xmlschema")
    if not (SCHEMA_DIR / "DSP8023.xsd").exists():
        pytest.skip(f"the DMTF OVF schema is not at {SCHEMA_DIR} (it comes with the shared workspace)")
    ns = "http://schemas.dmtf.org/wbem/wscim/1"
    locations = [("http://www.w3.org/XML/1998/namespace", SCHEMA_DIR / "xml.xsd"),
                 (f"{ns}/common", SCHEMA_DIR / "common.xsd"),
                 (f"{ns}/cim-schema/2/CIM_VirtualSystemSettingData", SCHEMA_DIR / "CIM_VirtualSystemSettingData.xsd"),
                 (f"{ns}/cim-schema/2/CIM_ResourceAllocationSettingData", SCHEMA_DIR / "CIM_ResourceAllocationSettingData.xsd")]
    return xmlschema.XMLSchema(str(SCHEMA_DIR / "DSP8023.xsd"), allow="local",
                               locations=[(n, str(p)) for n, p in locations])


def descriptor(**kw) -> bytes:
    args = dict(name="ccp-appliance-0.1.0", version="0.1.0", vmdk_file="disk1.vmdk", vmdk_bytes=1234,
                capacity_bytes=16 * 2**30)
    args.update(kw)
    return ovf.descriptor(**args)


class FakeRunner:
    """Records the commands first boot would run on a live system (logic test only)."""

    def __init__(self):
        self.calls: list[tuple[list[str], str | None]] = []

    def __call__(self, argv, stdin=None):
        self.calls.append((argv, stdin))


def make_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "home/ccp").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tccp-appliance\n::1\tlocalhost\n")
    return root


# ----------------------------------------------------------------- first boot

def test_environment_document_round_trips_through_first_boot_parser():
    fb = firstboot()
    props = {"hostname": "ccp-lab", "ip": "10.0.2.50/24", "admin_password": " spaced <&> pw "}
    parsed = fb.parse_env(ovf.environment(props).decode())
    assert parsed == props   # the password is kept exactly, spaces and markup included


def test_static_network_hostname_ntp_key_and_password(tmp_path):
    fb = firstboot()
    root = make_root(tmp_path)
    s = fb.Settings({"hostname": "CCP-Lab.example.com", "ip": "10.0.2.50/24", "gateway": "10.0.2.2",
                     "dns": "10.0.2.3, 192.0.2.53", "ntp": "ntp1.example.com ntp2.example.com",
                     "ssh_authorized_key": KEY, "admin_password": SECRET})
    run = FakeRunner()
    done = fb.apply(s, root, run)
    assert s.problems == []
    assert (root / "etc/hostname").read_text() == "ccp-lab.example.com\n"
    assert "127.0.1.1\tccp-lab.example.com" in (root / "etc/hosts").read_text()
    net = (root / "etc/systemd/network/10-ccp.network").read_text()
    assert "Address=10.0.2.50/24" in net and "Gateway=10.0.2.2" in net and "DNS=192.0.2.53" in net
    assert "DHCP" not in net
    assert "NTP=ntp1.example.com ntp2.example.com" in (root / "etc/systemd/timesyncd.conf.d/ccp.conf").read_text()
    keys = root / "home/ccp/.ssh/authorized_keys"
    assert keys.read_text().strip() == KEY and keys.stat().st_mode & 0o777 == 0o600
    assert "PasswordAuthentication no" in (root / "etc/ssh/sshd_config.d/10-ccp.conf").read_text()
    assert "NOPASSWD" not in (root / "etc/sudoers.d/ccp").read_text()
    assert ["ssh-keygen", "-A"] in [argv for argv, _ in run.calls]
    # The password reaches chpasswd on stdin only: never in argv, never in a file.
    chpasswd = [(argv, stdin) for argv, stdin in run.calls if argv[0] == "chpasswd"]
    assert chpasswd == [(["chpasswd"], f"ccp:{SECRET}\n")]
    assert all(SECRET not in " ".join(argv) for argv, _ in run.calls)
    for f in root.rglob("*"):
        if f.is_file():
            assert SECRET.encode() not in f.read_bytes(), f
    assert not any(SECRET in line for line in done)
    assert "10.0.2.50/24" in fb.banner(s, console=False) and "ccp install --config cluster.yaml" in fb.banner(s, False)


def test_password_applied_once_and_dhcp_default(tmp_path):
    fb = firstboot()
    root = make_root(tmp_path)
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("x")
    run = FakeRunner()
    fb.apply(fb.Settings({"admin_password": SECRET}), root, run)
    fb.apply(fb.Settings({"admin_password": SECRET}), root, run)    # the next boot
    assert [argv for argv, _ in run.calls].count(["chpasswd"]) == 1
    assert ["ssh-keygen", "-A"] not in [argv for argv, _ in run.calls]
    assert "DHCP=yes" in (root / "etc/systemd/network/10-ccp.network").read_text()
    assert "PasswordAuthentication yes" in (root / "etc/ssh/sshd_config.d/10-ccp.conf").read_text()
    assert (root / "etc/hostname").read_text() == "ccp-appliance\n"


@pytest.mark.parametrize("props, problem", [
    ({"ip": "10.0.2.50"}, "CIDR form"),
    ({"ip": "10.0.2.300/24"}, "CIDR form"),
    ({"hostname": "bad_name!"}, "not a valid host name"),
    ({"dns": "not-an-ip", "admin_password": "x"}, "dns 'not-an-ip'"),
    ({"ssh_authorized_key": "hello world"}, "not an OpenSSH public key"),
    ({}, "nobody can log in"),
])
def test_bad_properties_are_reported_and_safe_defaults_kept(tmp_path, props, problem):
    fb = firstboot()
    root = make_root(tmp_path)
    s = fb.Settings(props)
    fb.apply(s, root, FakeRunner())
    assert any(problem in p for p in s.problems), s.problems
    assert "note: " in (root / "etc/issue").read_text()
    if "ip" in props:
        assert "DHCP=yes" in (root / "etc/systemd/network/10-ccp.network").read_text()


# ----------------------------------------------------------------- OVF and OVA

def test_descriptor_validates_against_dsp8023_and_declares_the_properties():
    schema = ovf_schema()
    doc = descriptor()
    errors = list(schema.iter_errors(doc.decode()))
    assert errors == [], [e.reason for e in errors[:3]]
    assert ovf.properties_of(doc) == list(ovf.KEYS)
    text = doc.decode()
    assert 'ovf:password="true"' in text and "VMXNET3" in text and "<rasd:VirtualQuantity>4096<" in text
    assert 'ovf:transport="com.vmware.guestInfo iso"' in text


def test_schema_check_is_real(tmp_path):
    """A descriptor with a RASD item out of the CIM order must fail: the check above can fail."""
    schema = ovf_schema()
    bad = descriptor().decode().replace("<rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>", "", 1)
    bad = bad.replace("<rasd:ResourceType>4</rasd:ResourceType>",
                      "<rasd:ResourceType>4</rasd:ResourceType><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>")
    assert list(schema.iter_errors(bad))


def test_ova_layout_manifest_and_tamper_detection(tmp_path):
    disk = tmp_path / "disk.vmdk"
    disk.write_bytes(b"VMDK" * 5000)
    doc = descriptor(vmdk_file="a-disk1.vmdk", vmdk_bytes=disk.stat().st_size)
    path = tmp_path / "a.ova"
    ova.write(path, "a.ovf", doc, {"a-disk1.vmdk": disk})
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["a.ovf", "a.mf", "a-disk1.vmdk"]
        assert all(m.size < 8**11 for m in tar.getmembers())
        mf = tar.extractfile("a.mf").read().decode()
    assert f"SHA256(a.ovf)= {hashlib.sha256(doc).hexdigest()}" in mf
    assert f"SHA256(a-disk1.vmdk)= {hashlib.sha256(disk.read_bytes()).hexdigest()}" in mf
    assert path.read_bytes()[257:262] == b"ustar"
    pkg = ova.read(path)
    assert pkg.disks == ["a-disk1.vmdk"]

    damaged = tmp_path / "damaged.ova"
    data = bytearray(path.read_bytes())
    data[data.index(b"VMDKVMDK") + 3] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="does not match its SHA256"):
        ova.read(damaged)

    wrong_order = tmp_path / "order.ova"
    with tarfile.open(wrong_order, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("a-disk1.vmdk")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"VMDK"))
    with pytest.raises(ConfigError, match="not the .ovf descriptor"):
        ova.read(wrong_order)


def test_build_events_become_progress_and_error_families(tmp_path, monkeypatch):
    """ccp's side of the build: the script's JSON events drive progress; its error codes keep their family."""
    from ccp.appliance import build
    from ccp.errors import PreflightError

    fake = tmp_path / "fake_build.py"
    fake.write_text("import json,sys\n"
                    "for e in [dict(step='tools',state='start'),dict(step='tools',state='done',detail='ok',seconds=0.1),"
                    "dict(step='rootfs',state='reused',detail='cached',seconds=0.0)]:\n"
                    "    print(json.dumps(e))\n"
                    "if '--fail' in sys.argv:\n"
                    "    print(json.dumps(dict(error='needs root', resolution='run as root', code=3))); sys.exit(3)\n"
                    "print(json.dumps(dict(step='total',state='done',detail='/x/ccp.ova',seconds=1.5)))\n")
    monkeypatch.setattr(build, "script", lambda: fake)
    seen = []
    result = build.build([], seen.append)
    assert result.ova == Path("/x/ccp.ova") and [s["state"] for s in result.steps] == ["done", "reused"]
    assert [e["step"] for e in seen] == ["tools", "tools", "rootfs", "total"]
    with pytest.raises(PreflightError, match="needs root"):
        build.build(["--fail"], seen.append)


def test_build_script_refuses_without_root_or_tools(tmp_path, monkeypatch):
    """The real build script's first step, with the tools looked up on an empty PATH."""
    import subprocess
    import sys

    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, str(ROOT / "appliance/build.py"), "--events", "--out", str(tmp_path / "o"),
                        "--cache", str(tmp_path / "c"), "--version", "0.0.0"], capture_output=True, text=True, env=env,
                       timeout=60)
    events = [json.loads(line) for line in r.stdout.splitlines()]
    error = events[-1]
    assert r.returncode == 3 and error["code"] == 3
    assert "missing" in error["error"] or "root" in error["error"]
    assert "apt-get install" in error["resolution"] or "root" in error["resolution"]


def test_a_bundle_for_the_appliance_is_checked_against_its_own_index(tmp_path):
    """The build checks a bundle with no config at hand: readable, indexed, every file matching its sha256."""
    from ccp.bundle import archive
    from ccp.bundle.manifest import items
    from ccp.config.load import load
    from ccp.errors import PreflightError
    from tests.conftest import example_data, write_config
    from tests.unit.test_bundle import fill

    needed = items(load(write_config(tmp_path / "c.yaml", example_data())).config)
    source = tmp_path / "mirror"
    source.mkdir()
    fill(source, needed)
    good = tmp_path / "bundle.tar"
    archive.create(needed, source, good)
    assert archive.check_self(good) == len(needed)

    data = bytearray(good.read_bytes())
    marker = f"{needed[-1].kind}:{needed[-1].name}".encode()
    data[data.rindex(marker)] ^= 0x20
    bad = tmp_path / "damaged.tar"
    bad.write_bytes(bytes(data))
    with pytest.raises(PreflightError, match="damaged: 1 files") as info:
        archive.check_self(bad)
    assert "sha256" in info.value.details[0]
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(PreflightError, match="is not an offline bundle"):
        archive.check_self(tmp_path / "junk.tar")


def test_guestinfo_transport_is_read_only_on_vmware(tmp_path, monkeypatch):
    """The com.vmware.guestInfo transport: vmware-rpctool is asked only when systemd-detect-virt says
    VMware (elsewhere its backdoor call faults). Stand-ins for both tools on PATH."""
    fb = firstboot()
    env = ovf.environment({"hostname": "from-guestinfo"}).decode()
    (tmp_path / "vmware-rpctool").write_text(f"#!/bin/sh\n[ \"$1\" = 'info-get guestinfo.ovfEnv' ] && cat <<'X'\n{env}\nX\n")
    for virt in ("vmware", "kvm"):
        (tmp_path / "systemd-detect-virt").write_text(f"#!/bin/sh\necho {virt}\n")
        for tool in ("vmware-rpctool", "systemd-detect-virt"):
            (tmp_path / tool).chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
        got = fb.read_guestinfo()
        if virt == "vmware":
            assert fb.parse_env(got) == {"hostname": "from-guestinfo"}
        else:
            assert got is None


def test_a_tree_left_with_a_bind_mount_is_unmounted_before_it_is_deleted(tmp_path):
    """A build killed inside the chroot leaves /dev, /proc and /sys bound into its work tree; the next
    build must unmount them before deleting the tree, or it would delete what they show."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("bind mounts need root")
    loader = importlib.machinery.SourceFileLoader("appliance_build", str(ROOT / "appliance/build.py"))
    spec = importlib.util.spec_from_loader("appliance_build", loader)
    build = importlib.util.module_from_spec(spec)
    loader.exec_module(build)
    precious = tmp_path / "precious"          # stands for the host's /dev
    precious.mkdir()
    (precious / "keep-me").write_text("host data")
    work = tmp_path / "work" / "rootfs" / "dev"
    work.mkdir(parents=True)
    subprocess.run(["mount", "--bind", str(precious), str(work)], check=True)
    try:
        build.remove_tree(tmp_path / "work")
    finally:
        subprocess.run(["umount", "-l", str(work)], capture_output=True)
    assert not (tmp_path / "work").exists()
    assert (precious / "keep-me").read_text() == "host data"


def test_ctrl_c_during_the_build_at_a_terminal_says_interrupted(tmp_path):
    """In a pseudo-terminal, with the spinner up: Ctrl-C stops the build script too, exits 130 and says so
    (typer hands a Ctrl-C inside a command body back as a return value; ccp must still say it)."""
    import sys

    pexpect = pytest.importorskip("pexpect")
    slow = tmp_path / "slow_build.py"
    slow.write_text("import json, time\nprint(json.dumps({'step': 'tools', 'state': 'start'}), flush=True)\ntime.sleep(60)\n")
    drive = tmp_path / "drive.py"
    drive.write_text("from pathlib import Path\nfrom ccp.appliance import build\n"
                     f"build.script = lambda: Path({str(slow)!r})\n"
                     f"from ccp.cli import main\nmain(['appliance', 'build', '--out', {str(tmp_path / 'out')!r}])\n")
    child = pexpect.spawn(sys.executable, [str(drive)], encoding="utf-8", timeout=30, dimensions=(40, 150),
                          env={**__import__("os").environ, "TERM": "xterm"})
    child.expect("tools: check the build tools")
    child.sendintr()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert "interrupted" in child.before and "Traceback" not in child.before
