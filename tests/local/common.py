"""Helpers of the real-cluster suites (test_cluster.py, test_day2.py, test_upgrade.py): a cluster built by `ccp install` with
provisioner: local, run through ccp, kubectl and SSH as an operator would."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import EXAMPLES, ROOT

BUNDLE = ROOT / ".tools" / "lab-bundle.tar"
KUBECTL = ROOT / ".tools" / "lab" / "bin" / "kubectl"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn machines)"
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("mmdebstrap", "mmdebstrap")):
        if not shutil.which(tool):
            return f"{tool} is missing (apt-get install {pkg})"
    shared = Path(os.environ.get("CCP_SHARED_K8S", ROOT.parent / "shared" / "k8s"))
    if not (shared / "lab").exists():
        return f"no {shared}: the lab bundle is made from it"
    return None


class Cluster:
    def __init__(self, base: Path):
        self.base = base
        self.config = base / "cluster.yaml"
        self.state = base / "state"
        self.key = base / "id_ed25519"
        self.env = {**os.environ, "CCP_STATE_DIR": str(self.state), "NO_COLOR": "1", "COLUMNS": "200",
                    "TF_CLI_CONFIG_FILE": "/dev/null"}

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def ccp(self, *args, check=True, timeout=1200) -> subprocess.CompletedProcess:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ccp", *map(str, args)], capture_output=True, text=True,
                           env=self.env, timeout=timeout, cwd=self.base)
        print(f"$ ccp {' '.join(map(str, args))}  ({time.monotonic() - t0:.1f}s, exit {r.returncode})\n{r.stdout}{r.stderr}")
        if check:
            assert r.returncode == 0, f"ccp {args[0]} failed:\n{r.stdout}\n{r.stderr}"
        return r

    def kubectl(self, *args, server: str | None = None, timeout=60) -> str:
        cmd = [str(KUBECTL), "--kubeconfig", str(self.kubeconfig), "--request-timeout", "10s", *args]
        if server:
            cmd[3:3] = ["--server", server]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stderr}"
        return r.stdout

    def ssh(self, address: str, command: str, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run(["ssh", "-i", str(self.key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", f"ccp@{address}", command],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, f"ssh {address} {command}: {r.stderr}"
        return r

    def host(self):
        from ccp.config.load import load
        from ccp.providers.local_machines import LocalHost

        local = load(self.config).config.spec.local
        return LocalHost(Path(local.machinesDir), Path(local.rootfsCache))

    def nodes(self) -> dict[str, str]:
        recorded = {}
        for line in (self.state / "journal.jsonl").read_text().splitlines():
            event = json.loads(line)
            if event.get("phase") == "provision" and event.get("event") == "done":
                recorded = event["outputs"]["nodes"]
        return {name: rec["address"] for name, rec in recorded.items()}


def new_cluster(base: Path, name: str, subnet: str, *, load_balancers: int | None = None,
                control_planes: int | None = None, workers: int | None = None, **spec) -> Cluster:
    """examples/local.yaml (and its lab/ beside it) as cluster ``name`` on ``subnet`` ("10.84.0": the VIP is .5,
    machines take .10-.40), with its own SSH key and the lab bundle; ``spec`` keys replace spec's top-level ones."""
    c = Cluster(base)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(c.key)], check=True)
    data = yaml.safe_load((EXAMPLES / "local.yaml").read_text())
    shutil.copytree(EXAMPLES / "lab", c.base / "lab")
    data["metadata"]["name"] = name
    s = data["spec"]
    s["nodes"]["network"].update(cidr=f"{subnet}.0/24", gateway=f"{subnet}.1", dns=[f"{subnet}.1"],
                                 addresses=f"{subnet}.10-{subnet}.40")
    if control_planes is not None:
        s["nodes"]["controlPlane"]["count"] = control_planes
    if workers is not None:
        s["nodes"]["workers"][0]["count"] = workers
    s["loadBalancer"]["vip"] = f"{subnet}.5"
    if load_balancers is not None:
        s["loadBalancer"]["nginx"]["count"] = load_balancers
    s["ssh"]["privateKeyFile"] = str(c.key)
    s["offline"]["bundle"] = str(BUNDLE)
    s.update(spec)
    c.config.write_text(yaml.safe_dump(data, sort_keys=False))
    return c


def readyz(address: str, timeout: float = 3) -> bool:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with urllib.request.urlopen(f"https://{address}:6443/readyz", timeout=timeout, context=context) as r:
            return r.status == 200
    except OSError:
        return False


def wait_for(predicate, seconds: float, what: str, pause: float = 0.2) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if predicate():
            return time.monotonic() - t0
        time.sleep(pause)
    raise AssertionError(f"{what}: not within {seconds:.0f}s")


def leftovers(name: str) -> list[str]:
    """What a destroyed cluster named ``name`` could have left on the host (machines named ``name``-..., its bridge
    ccp-``name`` and their veths vb-``name``-...)."""
    found = []
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines() if f"/{name}-" in line.split()[4]]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if name in line]
    procs = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    found += [f"process {line.strip()}" for line in procs.splitlines() if "systemd-nspawn" in line and f"{name}-" in line]
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        found += [f"cgroup {p}" for p in hierarchy.glob(f"**/{name}-*") if p.is_dir()][:3]
    found += [f"propagate {p}" for p in Path("/run/systemd/nspawn/propagate").glob(f"{name}-*")]
    return found
