"""`ccp upgrade` on real machines: a cluster installed by ccp at v1.35.0-alpha.0 (1 load balancer, 3 control
planes, 2 workers) moves to the second build in ../shared/k8s, v1.35.0-lab.1, through the lab's offline bundle
that holds both versions (hack/lab-bundle.sh). While it runs, a thread probes the API through the VIP every
second (the longest gap is reported) and counts the available pods of a Deployment whose PodDisruptionBudget
keeps at least one (the minimum seen is reported).

In file order, on one cluster: the install; the upgrade SIGKILLed between the first and the second control
plane; a worker whose kubelet cannot be restarted (its unit masked) stops the resumed upgrade with a coded
error naming it while the cluster serves; then, the fault undone, a second --resume converges without
redoing anything done: every node at v1.35.0-lab.1, cluster.yaml moved to the target, etcd healthy.

Needs root, systemd-nspawn, mmdebstrap and ../shared/k8s (see test_cluster.py).
"""

from __future__ import annotations

import base64
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from ccp.errors import EXIT_REMOTE
from tests.conftest import ROOT
from tests.local import TIMES
from tests.local.common import KUBECTL, _why_not, new_cluster, wait_for

pytestmark = [pytest.mark.local, pytest.mark.slow, pytest.mark.timeout(2400)]

NAME = "ccp-up"
SUBNET = "10.85.0"
VIP = f"{SUBNET}.5"
BUNDLE = ROOT / ".tools" / "lab-bundle.tar"
FROM, TO = "1.35.0-alpha.0", "1.35.0-lab.1"
NEXT_BOM = "lab/bom-next.yaml"   # copied beside cluster.yaml with the rest of examples/lab


class Probe(threading.Thread):
    """Every second, through the VIP with the admin credentials: /readyz, and the Deployment's available
    replicas. Records the longest time without a good answer and the fewest available pods seen."""

    def __init__(self, kubeconfig: Path, journal: Path):
        super().__init__(daemon=True)
        self.journal = journal
        self.low: list[str] = []   # what the cluster looked like each time fewer than all pods were available
        user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
        self._dir = tempfile.TemporaryDirectory()
        cert, key = Path(self._dir.name) / "c.pem", Path(self._dir.name) / "k.pem"
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        key.write_bytes(base64.b64decode(user["client-key-data"]))
        key.chmod(0o600)
        self.context = ssl.create_default_context()
        self.context.check_hostname, self.context.verify_mode = False, ssl.CERT_NONE
        self.context.load_cert_chain(cert, key)
        self.stop = threading.Event()
        self.samples = 0
        self.longest_gap = 0.0
        self.min_available: int | None = None

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"https://{VIP}:6443{path}", timeout=2, context=self.context) as r:
            return r.read()

    def run(self) -> None:
        last_good = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                self._get("/readyz")
                last_good = time.monotonic()
                deploy = json.loads(self._get("/apis/apps/v1/namespaces/default/deployments/web"))
                available = deploy["status"].get("availableReplicas", 0)
                self.min_available = available if self.min_available is None else min(self.min_available, available)
                if available < deploy["spec"]["replicas"] and len(self.low) < 200:
                    picture = self._picture(available)
                    if not self.low or self.low[-1].split(" ", 1)[1] != picture.split(" ", 1)[1]:
                        self.low.append(picture)   # each change once, with the time it was first seen
                elif available >= deploy["spec"]["replicas"] and self.low and not self.low[-1].endswith(" all available"):
                    self.low.append(f"{time.strftime('%H:%M:%S')} all available")
            except (OSError, ValueError, KeyError):
                pass
            self.samples += 1
            self.longest_gap = max(self.longest_gap, time.monotonic() - last_good)
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t)))

    def _picture(self, available: int) -> str:
        """One line: when, the upgrade's phase then, each web pod (node, phase, Ready, deleting), nodes not Ready."""
        pods = json.loads(self._get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb"))["items"]
        nodes = json.loads(self._get("/api/v1/nodes"))["items"]
        phase = "-"
        if self.journal.exists():
            started = [line for line in self.journal.read_text().splitlines() if '"started"' in line]
            phase = json.loads(started[-1]).get("phase", "-") if started else "-"

        def ready(obj: dict) -> str:
            return next((c["status"] for c in obj["status"].get("conditions", []) if c["type"] == "Ready"), "?")
        web = [f'{p["metadata"]["name"][-5:]}@{p["spec"].get("nodeName", "-")}:{p["status"].get("phase")}'
               f'/ready={ready(p)}{"/deleting" if p["metadata"].get("deletionTimestamp") else ""}' for p in pods]
        down = [n["metadata"]["name"] for n in nodes if ready(n) != "True"]
        return f"{time.strftime('%H:%M:%S')} available={available} phase={phase} pods={web} nodes-not-ready={down}"

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        self._dir.cleanup()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    why = _why_not()
    if why:
        pytest.skip(why)
    # always: it packs again only when an input changed (a bundle made before it held the target is)
    subprocess.run(["bash", str(ROOT / "hack" / "lab-bundle.sh")], check=True, cwd=ROOT)
    # one load balancer is enough to prove the VIP stays (CPU); one PVC check on one node
    c = new_cluster(tmp_path_factory.mktemp("upgrade-cluster"), NAME, SUBNET, load_balancers=1)
    data = yaml.safe_load(c.config.read_text())
    data["spec"]["validation"]["pvc"]["crossNode"] = False
    c.config.write_text(yaml.safe_dump(data, sort_keys=False))
    t0 = time.monotonic()
    try:
        c.ccp("install", "--config", c.config, "--yes")
        TIMES["upgrade suite: install"] = time.monotonic() - t0
        yield c
    finally:
        if c.state.exists():
            c.ccp("destroy", "--config", c.config, "--yes", check=False)
        print("upgrade suite times: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items() if k.startswith("upgrade")))


def _events(cluster) -> list[dict]:
    journal = cluster.state / "journal.jsonl"
    return [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")] if journal.exists() else []


def _started(cluster, since: int) -> list[str]:
    return [e["phase"] for e in _events(cluster)[since:] if e.get("event") == "started" and e["phase"].startswith("upgrade/")]


def _versions(cluster) -> dict[str, str]:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}


def _upgrade_args(cluster, *extra) -> list[str]:
    return ["upgrade", "--config", str(cluster.config), "--to", TO, "--bill-of-materials", str(cluster.base / NEXT_BOM), *extra]


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app: web}}}
      securityContext: {runAsNonRoot: true, runAsUser: 1000, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: docker.io/library/busybox:1.35.0
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "sleep 100000"]
        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: default}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"""


@pytest.fixture(scope="module")
def probe(cluster):
    subprocess.run([str(KUBECTL), "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"], input=WEB, text=True,
                   check=True, capture_output=True)
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=180s", timeout=200)
    p = Probe(cluster.kubeconfig, cluster.state / "journal.jsonl")
    p.start()
    yield p
    p.finish()


def test_the_cluster_starts_at_the_first_build(cluster):
    assert set(_versions(cluster).values()) == {f"v{FROM}"}
    r = cluster.ccp(*_upgrade_args(cluster, "--dry-run"))
    assert f"upgrade {FROM} -> {TO}" in r.stdout and "stage" in r.stdout and "canary" in r.stdout


def test_upgrade_killed_between_two_control_planes(cluster, probe):
    """SIGKILL of ccp the moment the first control plane is done: nothing after it has started."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "ccp", *_upgrade_args(cluster, "--yes")], env=cluster.env,
                            cwd=cluster.base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_cp = f"upgrade/{TO}/control-plane/{NAME}-cp-1"

    def first_cp_done() -> bool:
        return proc.poll() is not None or any(e.get("phase") == first_cp and e.get("event") == "done" for e in _events(cluster))
    wait_for(first_cp_done, 900, "the first control plane upgraded", pause=0.1)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0]
    print(output)
    assert alive, "the upgrade ended before it could be killed"
    TIMES["upgrade: until killed after cp-1"] = time.monotonic() - t0
    versions = _versions(cluster)
    assert versions[f"{NAME}-cp-1"] == f"v{TO}" and versions[f"{NAME}-cp-2"] == f"v{FROM}", versions


def test_a_worker_that_fails_stops_the_upgrade_naming_it_while_the_cluster_serves(cluster, probe):
    worker = cluster.nodes()[f"{NAME}-worker-2"]
    cluster.ssh(worker, "sudo systemctl mask kubelet")   # it runs on, but the upgrade cannot restart it
    since = len(_events(cluster))
    t0 = time.monotonic()
    r = cluster.ccp(*_upgrade_args(cluster, "--resume"), check=False, timeout=2400)
    TIMES["upgrade: resume until the failing worker"] = time.monotonic() - t0
    assert r.returncode == EXIT_REMOTE, f"expected the remote error family ({EXIT_REMOTE}), got {r.returncode}"
    assert f"{NAME}-worker-2" in r.stderr and "--resume" in r.stderr and "Traceback" not in r.stdout + r.stderr
    started = _started(cluster, since)
    assert f"upgrade/{TO}/control-plane/{NAME}-cp-1" not in started and f"upgrade/{TO}/preflight/-" not in started, started
    assert readyz_through_vip(probe)
    versions = _versions(cluster)
    assert versions[f"{NAME}-worker-1"] == f"v{TO}" and versions[f"{NAME}-worker-2"] == f"v{FROM}", versions


def readyz_through_vip(probe: Probe) -> bool:
    try:
        probe._get("/readyz")
        return True
    except OSError:
        return False


def test_the_resumed_upgrade_converges_and_redoes_nothing(cluster, probe):
    worker = cluster.nodes()[f"{NAME}-worker-2"]
    cluster.ssh(worker, "sudo systemctl unmask kubelet")
    since = len(_events(cluster))
    t0 = time.monotonic()
    r = cluster.ccp(*_upgrade_args(cluster, "--resume"), timeout=2400)
    TIMES["upgrade: last resume"] = time.monotonic() - t0
    started = _started(cluster, since)
    redone = [s for s in started if "/control-plane/" in s or "/stage/" in s or "/backup/" in s or s.endswith("worker-1")]
    assert redone == [], started
    assert set(_versions(cluster).values()) == {f"v{TO}"}
    assert f'version: "{TO}"' in cluster.config.read_text() and f'billOfMaterials: "{NEXT_BOM}"' in cluster.config.read_text()
    probe.finish()
    TIMES["upgrade: longest API gap through the VIP"] = probe.longest_gap
    TIMES["upgrade: fewest available web pods"] = float(probe.min_available if probe.min_available is not None else -1)
    print(f"API through the VIP: longest gap {probe.longest_gap:.1f}s over {probe.samples} probes; "
          f"web Deployment (PDB minAvailable 1): fewest available {probe.min_available}")
    print("moments with fewer web pods available than wanted:\n  " + "\n  ".join(probe.low))
    assert probe.min_available is not None and probe.min_available >= 1, "\n".join(probe.low)
    assert probe.longest_gap < 10, f"the API through the VIP was gone {probe.longest_gap:.1f}s"
    assert "upgraded to" in r.stdout


def test_after_the_upgrade_every_control_plane_runs_the_target_and_etcd_is_whole(cluster):
    pods = json.loads(cluster.kubectl("-n", "kube-system", "get", "pods", "-l", "tier=control-plane", "-o", "json"))["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"] if "etcd" not in c["image"]}
    assert images and all(i.endswith(f":v{TO}") for i in images), images
    out = cluster.kubectl("-n", "kube-system", "exec", f"etcd-{NAME}-cp-1", "--", "etcdctl", "--endpoints=https://127.0.0.1:2379",
                          "--cacert=/etc/kubernetes/pki/etcd/ca.crt", "--cert=/etc/kubernetes/pki/etcd/server.crt",
                          "--key=/etc/kubernetes/pki/etcd/server.key", "member", "list", "-w", "json")
    assert sorted(m["name"] for m in json.loads(out)["members"]) == [f"{NAME}-cp-{i}" for i in (1, 2, 3)]
    r = cluster.ccp(*_upgrade_args(cluster))
    assert "nothing to do" in r.stdout
    # every node is stamped as prepared at the target: the next apply does not prepare them again
    r = cluster.ccp("install", "--config", cluster.config, "--yes", "--until", "hosts/prepare")
    assert "prepare host" not in r.stdout + r.stderr, "an upgraded node would be prepared again"
