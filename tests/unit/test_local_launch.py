"""How a local machine is launched: systemd-nspawn as the first process of a pid namespace of its own, so a machine
dies with its systemd-nspawn as a VM dies with its hypervisor process. Found on real nodes: a SIGKILLed
systemd-nspawn left its machine running on (its systemd reparented to the host's init, kubelet and etcd still
serving) while ccp's status and `ccp diagnose` called it stopped.

Run for real (root: pid and mount namespaces) with stand-ins: a copy of sh named systemd-nspawn that makes the
machine's pid namespace, as nspawn does, and a sleep as the machine's init."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ccp.providers.local_machines import DIE_TOGETHER, LocalHost

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                reason="needs root and unshare (pid and mount namespaces)")


def _gone(pid: int, seconds: float = 5) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def _machine(tmp_path, die_together: bool):
    nspawn = tmp_path / "systemd-nspawn"
    shutil.copy("/bin/sh", nspawn)
    argv = [*(DIE_TOGETHER if die_together else ()), str(nspawn), "-c", "unshare --pid --fork sleep 300 & wait"]
    launcher = subprocess.Popen(argv, start_new_session=True)
    rec = {"launcher_pid": launcher.pid}
    end = time.monotonic() + 10
    while (init := LocalHost._leader(rec)) is None and time.monotonic() < end:
        time.sleep(0.05)
    assert init is not None and Path(f"/proc/{init}/comm").read_text().strip() == "sleep"
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children").read_text().split()
    stand_in = launcher.pid if not die_together else int(children[0])
    assert Path(f"/proc/{stand_in}/comm").read_text().strip() == "systemd-nspawn"
    return launcher, stand_in, init


@pytest.mark.parametrize("killed", ["systemd-nspawn", "the launcher"])
def test_a_machine_dies_with_its_systemd_nspawn_or_its_launcher(tmp_path, killed):
    launcher, nspawn, init = _machine(tmp_path, die_together=True)
    try:
        os.kill(nspawn if killed == "systemd-nspawn" else launcher.pid, signal.SIGKILL)
        assert _gone(init), "the machine's init outlived its systemd-nspawn"
        launcher.wait(timeout=5)
    finally:
        for pid in (init, nspawn, launcher.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_without_its_own_pid_namespace_the_machine_outlives_systemd_nspawn(tmp_path):
    """What the machines did before DIE_TOGETHER (the failure the test above guards against)."""
    launcher, nspawn, init = _machine(tmp_path, die_together=False)
    try:
        os.kill(nspawn, signal.SIGKILL)
        launcher.wait(timeout=5)
        assert not _gone(init, seconds=1)
    finally:
        os.kill(init, signal.SIGKILL)
