"""The real cluster the e2e suites run against, one per test session:

1. CCP_E2E_KUBECONFIG, when set: any cluster (a throw-away one: the suites create and delete objects);
2. else the shared lab (../shared/k8s/lab beside the checkout, or CCP_E2E_LAB), started in a temporary
   directory when the tests run as root, stopped at the end with nothing left behind (no process,
   mount or bridge of it);
3. else every e2e test is skipped with the reason.

The lab is a real single-node Kubernetes without image pulls, CoreDNS, kube-proxy or a dynamic
provisioner: tests that need one of those say so in their skip reason (see ``lab_limit``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAB = Path(os.environ.get("CCP_E2E_LAB", ROOT.parent / "shared" / "k8s" / "lab"))
LAB_IMAGE = "docker.io/local/busybox:lab"       # present on the lab's node; never pulled


def lab_binary(tmp_path_factory, name: str) -> Path:
    """A static binary of the shared lab (bin/NAME.xz), unpacked into a temporary directory; skips without it."""
    import lzma

    packed = LAB.parent / "bin" / f"{name}.xz"
    if not packed.exists():
        pytest.skip(f"no {name}: no shared lab binary at {packed}")
    out = tmp_path_factory.mktemp(name) / name
    out.write_bytes(lzma.decompress(packed.read_bytes()))
    out.chmod(0o755)
    return out


@dataclass
class RealCluster:
    kubeconfig: Path
    is_lab: bool
    image: str | None          # an image the node has (the lab's busybox), or None: the product's default
    bin_dir: Path | None       # the lab's kubeadm and kubectl

    def limit(self, what: str) -> None:
        """Skip a test that needs what the lab lacks, saying exactly what."""
        if self.is_lab:
            pytest.skip(f"the shared lab cannot give this: {what}")


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _leftovers(lab_dir: Path) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(lab_dir) in cmd:
            found.append(f"process {pid}: {cmd[:120]}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount = line.split()[4]
        if mount.startswith(str(lab_dir)):
            found.append(f"mount {mount}")
    if subprocess.run(["ip", "link", "show", "labbr0"], capture_output=True).returncode == 0:
        found.append("bridge labbr0")
    return found


def _start_lab() -> tuple[Path, Path]:
    lab_dir = Path(tempfile.mkdtemp(prefix="ccp-e2e-lab-"))
    if _port_busy(6443):
        pytest.fail("127.0.0.1:6443 is in use (another lab or API server runs here): stop it "
                    "(`lab down DIR`), or point CCP_E2E_KUBECONFIG at that cluster")
    proc = subprocess.run(["bash", str(LAB), "up", str(lab_dir)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        subprocess.run(["bash", str(LAB), "down", str(lab_dir)], capture_output=True, timeout=300)
        pytest.fail(f"the shared lab did not start (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return lab_dir, lab_dir / "pki" / "admin.conf"


@pytest.fixture(scope="session")
def real_cluster():
    given = os.environ.get("CCP_E2E_KUBECONFIG")
    if given:
        yield RealCluster(Path(given), False, os.environ.get("CCP_E2E_IMAGE"), None)
        return
    if not LAB.exists():
        pytest.skip(f"no real cluster: CCP_E2E_KUBECONFIG is not set and there is no shared lab at {LAB}")
    if os.geteuid() != 0:
        pytest.skip(f"no real cluster: CCP_E2E_KUBECONFIG is not set and the shared lab ({LAB}) needs root")
    lab_dir, kubeconfig = _start_lab()
    try:
        yield RealCluster(kubeconfig, True, LAB_IMAGE, lab_dir / "bin")
    finally:
        down = subprocess.run(["bash", str(LAB), "down", str(lab_dir)], capture_output=True, text=True, timeout=300)
        left = _leftovers(lab_dir)
        if not left:
            shutil.rmtree(lab_dir, ignore_errors=True)
        # What counts is what is left: `lab down` ends with `ip link show labbr0 && ip link del ...`, so it
        # exits 1 whenever no pod ever made the bridge (a session that ran no pod), with nothing left over.
        assert not left, f"lab down (exit {down.returncode}) left: {left}\n{down.stdout[-2000:]}{down.stderr[-2000:]}"


@pytest.fixture
def kubeconfig(real_cluster) -> Path:
    return real_cluster.kubeconfig
