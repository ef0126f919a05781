"""vcsim, VMware's vSphere simulator, built by hack/vcsim.sh: one fresh instance per test module.

Without the binary the sim tests are skipped locally (run `hack/vcsim.sh build`); under CI they fail,
because .ci/run must have built it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

VCSIM = Path(os.environ.get("CCP_VCSIM", ROOT / ".tools" / "bin" / "vcsim"))


@dataclass
class Vcsim:
    host: str
    port: int
    process: subprocess.Popen

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.server}/sdk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vcsim(tmp_path_factory):
    if not VCSIM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{VCSIM} is missing: .ci/run must build it (hack/vcsim.sh build)")
        pytest.skip(f"vcsim not built ({VCSIM}); run hack/vcsim.sh build")
    port = _free_port()
    log = tmp_path_factory.mktemp("vcsim") / "vcsim.log"
    proc = subprocess.Popen([str(VCSIM), "-l", f"127.0.0.1:{port}", "-api-version", "8.0.3.0",
                             "-dc", "1", "-cluster", "1", "-host", "3", "-vm", "2"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"vcsim did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    yield Vcsim("127.0.0.1", port, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class SimVsphere:
    """Assertions against the simulator through pyvmomi (the test's own eyes, not ccp's code)."""

    def __init__(self, sim: Vcsim):
        from pyVim.connect import SmartConnect

        self.si = SmartConnect(host=sim.host, port=sim.port, user="user", pwd="pass", disableSslCertValidation=True)
        self.content = self.si.RetrieveContent()
        self.dc = self.content.rootFolder.childEntity[0]

    def vms(self) -> dict[str, list]:
        """name -> [VM, ...] (a list, so duplicates would show)."""
        from pyVmomi import vim

        view = self.content.viewManager.CreateContainerView(self.dc.vmFolder, [vim.VirtualMachine], True)
        out: dict[str, list] = {}
        for vm in view.view:
            out.setdefault(vm.name, []).append(vm)
        view.Destroy()
        return out

    def owner(self, vm) -> str | None:
        return next((o.value for o in vm.config.extraConfig if o.key == "guestinfo.ccp.cluster"), None)

    def folder(self, name: str):
        existing = {f.name: f for f in self.dc.vmFolder.childEntity if f.__class__.__name__ == "vim.Folder"}
        return existing.get(name) or self.dc.vmFolder.CreateFolder(name)

    def clone_stranger(self, name: str) -> None:
        """A VM with one of our names but no ownership mark, as someone else might have made it."""
        from pyVim.task import WaitForTask
        from pyVmomi import vim

        template = self.vms()["DC0_C0_RP0_VM0"][0]
        pool = template.resourcePool
        WaitForTask(template.CloneVM_Task(folder=self.dc.vmFolder, name=name,
                                          spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=pool), powerOn=False)))


@pytest.fixture
def sim(vcsim) -> SimVsphere:
    return SimVsphere(vcsim)


@pytest.fixture
def sim_config(vcsim, sim, tmp_path, monkeypatch):
    """examples/vcsim.yaml pointed at this test's simulator; returns (path, data, write)."""
    import yaml

    from tests.conftest import EXAMPLES

    monkeypatch.setenv("CCP_VCSIM_SHIM", "1")
    sim.folder("ccp-vcsim")
    data = yaml.safe_load((EXAMPLES / "vcsim.yaml").read_text())
    data["spec"]["vsphere"]["server"] = vcsim.server
    data["spec"]["ssh"]["privateKeyFile"] = "~/.ssh/id_ed25519"
    path = tmp_path / "vcsim.yaml"

    def write(d=None):
        path.write_text(yaml.safe_dump(d or data, sort_keys=False))
        return path

    write()
    return path, data, write
