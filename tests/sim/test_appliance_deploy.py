"""ccp appliance deploy against vcsim: ImportVApp + HttpNfcLease upload of a real streamOptimized VMDK,
the VM's hardware from the OVF, power on, a rerun that imports nothing, and a damaged OVA refused.

vcsim does not keep vApp properties on the imported VM, so what ccp sends as the property mapping is
checked on the way out (a wrapper around the real call), not read back.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import run_ccp

SECRET = "Appliance-Planted-Pw-77"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0kK8b0dW8cVnqk3LxuJmP6Gmr0tU5g8eTz2G7rYnX ops@example"


@pytest.fixture
def small_ova(tmp_path):
    from ccp.appliance import ova, ovf

    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is missing (hack/setup.sh installs qemu-utils)")
    raw = tmp_path / "disk.raw"
    raw.write_bytes(bytes(range(256)) * 16384)   # 4 MiB
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(raw), str(vmdk)], check=True)
    path = tmp_path / "ccp-appliance-test.ova"
    doc = ovf.descriptor(name="ccp-appliance-test", version="0.0.1", vmdk_file="ccp-appliance-test-disk1.vmdk",
                         vmdk_bytes=vmdk.stat().st_size, capacity_bytes=raw.stat().st_size)
    ova.write(path, "ccp-appliance-test.ovf", doc, {"ccp-appliance-test-disk1.vmdk": vmdk})
    return path


def test_deploy_imports_uploads_and_powers_on(sim_config, sim, small_ova, tmp_path, monkeypatch):
    from ccp.appliance import deploy

    path, _data, _write = sim_config
    sent = {}
    real = deploy._import_spec

    def recording_import_spec(session, pkg, pl, name, props):
        sent.update(props)
        return real(session, pkg, pl, name, props)

    monkeypatch.setattr(deploy, "_import_spec", recording_import_spec)
    key = tmp_path / "ops.pub"
    key.write_text(KEY + "\n")
    monkeypatch.setenv("CCP_APPLIANCE_PASSWORD", SECRET)
    r = run_ccp("appliance", "deploy", "--ova", small_ova, "--config", path, "--name", "ccp-appliance-1",
                "--hostname", "ccp-lab", "--ip", "192.0.2.10/24", "--gateway", "192.0.2.1", "--ssh-key", key)
    assert r.code == 0, r.text
    assert "deployed, powered on" in r.out and "MiB uploaded" in r.err
    assert SECRET not in r.text
    assert sent == {"hostname": "ccp-lab", "ip": "192.0.2.10/24", "gateway": "192.0.2.1", "admin_password": SECRET,
                    "ssh_authorized_key": KEY}

    vm = sim.vms()["ccp-appliance-1"]
    assert len(vm) == 1
    vm = vm[0]
    assert vm.parent.name == "ccp-vcsim" and vm.runtime.powerState == "poweredOn"
    hw = vm.config.hardware
    kinds = [type(d).__name__ for d in hw.device]
    assert (hw.numCPU, hw.memoryMB) == (2, 4096)
    assert "vim.vm.device.VirtualVmxnet3" in kinds and "vim.vm.device.ParaVirtualSCSIController" in kinds
    assert "vim.vm.device.VirtualCdrom" in kinds and kinds.count("vim.vm.device.VirtualDisk") == 1

    again = run_ccp("appliance", "deploy", "--ova", small_ova, "--config", path, "--name", "ccp-appliance-1")
    assert again.code == 0 and "already there" in again.out
    assert len(sim.vms()["ccp-appliance-1"]) == 1


def test_deploy_refuses_damaged_ova_and_unknown_property(sim_config, sim, small_ova, tmp_path):
    path, _data, _write = sim_config
    data = bytearray(small_ova.read_bytes())
    data[-20000] ^= 0xFF      # inside the disk, past the descriptor and manifest
    damaged = tmp_path / "damaged.ova"
    damaged.write_bytes(bytes(data))
    r = run_ccp("appliance", "deploy", "--ova", damaged, "--config", path, "--name", "broken")
    assert r.code == 2 and "does not match its SHA256" in r.err and "to fix" in r.err
    assert "broken" not in sim.vms()

    missing = run_ccp("appliance", "deploy", "--ova", small_ova, "--config", path, "--ssh-key", tmp_path / "nope.pub")
    assert missing.code == 2 and "no SSH public key" in missing.err
