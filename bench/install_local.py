"""Install one real HA cluster on local machines twice, side by side in one run, and compare per phase:

  ccp  `ccp install --until addons` of a cluster.yaml derived from examples/local.yaml (validation is
       left out of both sides); per-phase times from its journal, total = wall time of the command
  raw  the same machines booted with ccp's machine library, then what an operator does by hand over
       plain ssh/scp: bundle packages and images, containerd, NGINX + keepalived, kubeadm init and
       joins, CNI and the local-path add-on with kubectl. The configuration files are ccp's rendered
       ones (the point is the time of the steps, not of writing the files)

Also reports ccp's own CPU time (user+sys of the ccp process and the children it waited for; the
machines are started detached, so their work is not in it) as a share of its wall time.
Prints seconds and ratios; asserts nothing. Targets: ccp total <= 1.3x raw, ccp CPU <= 3 % of its wall.
Everything it starts is destroyed, also on failure. Needs root and the lab bundle (make lab-bundle).
usage: python bench/install_local.py [--load-balancers 1] [--control-planes 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / ".tools" / "lab-bundle.tar"
KUBECTL = ROOT / ".tools" / "lab" / "bin" / "kubectl"
CCP = ROOT / ".venv" / "bin" / "ccp"
PHASES = ["provision", "hosts/prepare", "loadbalancer/nginx", "kubeadm/init", "kubeadm/join-control-plane",
          "kubeadm/join-workers", "kubeconfig", "cni", "addons"]
CONTROL_PLANE_ONLY = ("_kube-apiserver_", "_kube-controller-manager_", "_kube-scheduler_", "_etcd_")
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"]
PAUSE = "registry.k8s.io/pause:3.10.1"
WAIT = 900


class Stage:
    """Where the run is, for the failure message."""
    now = "setup"


def cluster_yaml(work: Path, name: str, net: str, key: Path, counts: argparse.Namespace, bridge: str) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "local.yaml").read_text())
    spec = data["spec"]
    data["metadata"]["name"] = name
    spec["kubernetes"]["billOfMaterials"] = str(ROOT / "examples" / "lab" / "bom.yaml")
    spec["kubernetes"]["kubeadm"]["patches"] = str(ROOT / "examples" / "lab" / "kubeadm-patches")
    spec["nodes"]["network"].update(cidr=f"{net}.0/24", gateway=f"{net}.1", dns=[f"{net}.1"],
                                    addresses=f"{net}.10-{net}.40")
    spec["nodes"]["controlPlane"]["count"] = counts.control_planes
    spec["nodes"]["workers"] = [{**spec["nodes"]["workers"][0], "count": counts.workers}]
    spec["loadBalancer"]["vip"] = f"{net}.5"
    spec["loadBalancer"]["nginx"]["count"] = counts.load_balancers
    spec["ssh"]["privateKeyFile"] = str(key)
    spec["offline"]["bundle"] = str(BUNDLE)
    spec["local"] = {"bridge": bridge}
    spec["validation"]["pvc"]["crossNode"] = counts.workers >= 2   # only to keep `ccp` from warning about it
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(argv: list, env=None, log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    if log is not None:
        with open(log, "ab") as f:
            r = subprocess.run([str(a) for a in argv], env=env, stdout=f, stderr=subprocess.STDOUT, **kw)
        if r.returncode:
            tail = log.read_text(errors="replace").splitlines()[-25:]
            raise RuntimeError(f"{' '.join(map(str, argv[:4]))} ... exited {r.returncode}; last lines of {log}:\n"
                               + "\n".join(tail))
        return r
    r = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True, **kw)
    if r.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv[:6]))} ... exited {r.returncode}: "
                           f"{(r.stderr or r.stdout).strip()[-2000:]}")
    return r


# ---------------------------------------------------------------- (A) ccp

def bench_ccp(work: Path, key: Path, counts) -> dict:
    cfg = cluster_yaml(work, "bench-ccp", "10.81.0", key, counts, "ccp-bench-ccp")
    state = work / "state-ccp"
    env = {**os.environ, "CCP_STATE_DIR": str(state), "NO_COLOR": "1"}
    log = work / "ccp-install.log"
    try:
        Stage.now = "ccp install"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([str(CCP), "install", "--config", str(cfg), "--yes", "--until", "addons"], env=env,
                              stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        phases = {}
        for line in (state / "journal.jsonl").read_text().splitlines() if (state / "journal.jsonl").exists() else []:
            e = json.loads(line)
            if e.get("phase") and e.get("event") in ("done", "failed") and e.get("duration") is not None:
                phases[e["phase"]] = (e["duration"], e["event"])
        if proc.returncode:
            failed = [p for p, (_, ev) in phases.items() if ev == "failed"]
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"ccp install exited {proc.returncode} (failed phase: {', '.join(failed) or '?'}); "
                               f"last lines of {log}:\n{tail}")
        return {"phases": {p: d for p, (d, _) in phases.items()}, "wall": wall, "cpu": cpu}
    finally:
        Stage.now = "ccp destroy"
        r = subprocess.run([str(CCP), "destroy", "--config", str(cfg), "--yes"], env=env, capture_output=True, text=True)
        if r.returncode:
            print(f"!! ccp destroy exited {r.returncode}: {(r.stderr or r.stdout).strip()[-1500:]}", file=sys.stderr)


# ---------------------------------------------------------------- (B) raw steps

class Raw:
    def __init__(self, work: Path, key: Path, counts):
        from ccp.providers.local_machines import LocalHost

        self.work, self.key, self.counts = work, key, counts
        self.cluster, self.net, self.bridge = "bench-raw", "10.82.0", "ccp-bench-raw"
        self.cfg = cluster_yaml(work, self.cluster, self.net, key, counts, self.bridge)
        self.host = LocalHost(Path("/var/lib/ccp/local/machines"), Path("/var/lib/ccp/local/rootfs"))
        self.times: dict[str, float] = {}
        self.logs = work / "raw-logs"
        self.logs.mkdir()
        env = {**os.environ, "CCP_STATE_DIR": str(work / "state-raw"), "NO_COLOR": "1"}
        # the "hand-written" files an operator would have: ccp's rendered ones (not timed)
        self.files = work / "raw-rendered"
        run([CCP, "render", "--config", self.cfg, "--out", self.files], env=env)
        run([CCP, "addons", "render", "--config", self.cfg, "--out", work / "raw-addons"], env=env)
        self.addons = sorted((work / "raw-addons").glob("*.yaml"))
        self.bundle = work / "bundle"
        with tarfile.open(BUNDLE) as tar:
            tar.extractall(self.bundle, filter="data", members=[m for m in tar.getmembers() if m.isfile()
                                                 and m.name.startswith(("packages/", "images/"))])
        self.nodes = []   # (name, role, address)
        i = 10
        for role, short, n in (("loadbalancer", "lb", counts.load_balancers), ("control-plane", "cp", counts.control_planes),
                               ("worker", "worker", counts.workers)):
            for k in range(1, n + 1):
                self.nodes.append((f"{self.cluster}-{short}-{k}", role, f"{self.net}.{i}"))
                i += 1
        self.kubeconfig = work / "raw-admin.conf"

    def of(self, role):
        return [(n, a) for n, r, a in self.nodes if r == role]

    def ssh(self, addr: str, cmd: str, name: str = "") -> str:
        return run(["ssh", *SSH_OPTS, "-i", self.key, f"ccp@{addr}", cmd]).stdout

    def scp(self, addr: str, files: list, dest: str) -> None:
        run(["scp", "-q", *SSH_OPTS, "-i", self.key, *files, f"ccp@{addr}:{dest}"])

    def kubectl(self, *args) -> str:
        return run([KUBECTL, "--kubeconfig", self.kubeconfig, *args]).stdout

    def step(self, phase: str, fn) -> None:
        Stage.now = f"raw {phase}"
        t0 = time.perf_counter()
        fn()
        self.times[phase] = time.perf_counter() - t0

    @staticmethod
    def each(items, fn):
        with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
            for f in [pool.submit(fn, *it) for it in items]:
                f.result()

    # -- the steps

    def provision(self):
        from ccp.providers.local import PACKAGES
        from ccp.providers.local_machines import MachineSpec

        pub = Path(f"{self.key}.pub").read_text().strip()
        specs = [MachineSpec(cluster=self.cluster, name=n, role=r, address=f"{a}/24", gateway=f"{self.net}.1",
                             dns=(f"{self.net}.1",), ssh_user="ccp", authorized_key=pub, bridge=self.bridge)
                 for n, r, a in self.nodes]
        rootfs = self.host.rootfs(PACKAGES)
        self.host.ensure_bridge(self.bridge, f"{self.net}.1/24")
        self.host.boot_many(specs, rootfs)

    def prepare(self):
        debs = sorted((self.bundle / "packages").glob("*.deb"))
        images = sorted((self.bundle / "images").glob("*.tar"))
        script = f"""set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
sudo swapoff -a
printf 'overlay\\nbr_netfilter\\n' | sudo tee /etc/modules-load.d/k8s.conf >/dev/null
printf 'net.ipv4.ip_forward = 1\\nnet.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\nvm.max_map_count = 262144\\n' \\
  | sudo tee /etc/sysctl.d/90-k8s.conf >/dev/null
sudo sysctl --quiet --system
sudo -E apt-get install -y -qq --allow-downgrades --allow-change-held-packages $HOME/bundle/*.deb >/dev/null
sudo apt-mark hold kubeadm kubelet kubectl >/dev/null
sudo install -d -m 0755 /opt/cni/bin
for p in /usr/lib/cni/*; do [ -e /opt/cni/bin/$(basename $p) ] || sudo ln -s $p /opt/cni/bin/; done
sudo install -d -m 0755 /etc/containerd
containerd config default | sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' \\
  -e 's#sandbox_image = ".*"#sandbox_image = "{PAUSE}"#' \\
  -e 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' | sudo tee /etc/containerd/config.toml >/dev/null
sudo systemctl restart containerd
sudo systemctl enable kubelet >/dev/null 2>&1
for f in $HOME/bundle/*.tar; do sudo ctr -n k8s.io images import $f >/dev/null; done
"""

        def one(name, addr, role):
            mine = [i for i in images if role != "worker" or not any(p in i.name for p in CONTROL_PLANE_ONLY)]
            self.ssh(addr, "mkdir -p bundle")
            self.scp(addr, debs + mine, "bundle/")
            self.ssh(addr, f"bash -c {shlex_quote(script)}")

        self.each([(n, a, r) for n, r, a in self.nodes if r != "loadbalancer"], one)

    def loadbalancer(self):
        def one(name, addr):
            self.scp(addr, [self.files / "nginx" / name / "nginx.conf", self.files / "keepalived" / name / "keepalived.conf",
                            self.files / "keepalived" / name / "check_apiserver.sh"], "")
            self.ssh(addr, "set -e; sudo install -m 0644 nginx.conf /etc/nginx/nginx.conf; "
                           "sudo install -m 0644 keepalived.conf /etc/keepalived/keepalived.conf; "
                           "sudo install -m 0700 check_apiserver.sh /etc/keepalived/check_apiserver.sh; "
                           "sudo nginx -t -q; sudo systemctl enable nginx keepalived >/dev/null 2>&1; "
                           "sudo systemctl restart nginx; sudo keepalived -t -f /etc/keepalived/keepalived.conf; "
                           "sudo systemctl restart keepalived")
        self.each(self.of("loadbalancer"), one)

    def upload_security(self, addr):
        """The API server's encryption configuration (with a key made by hand, as an operator would), audit policy
        and admission configuration, where the rendered kubeadm configuration points kube-apiserver."""
        import base64
        import secrets

        if not hasattr(self, "security"):
            self.security = self.work / "raw-security"
            self.security.mkdir()
            key = base64.b64encode(secrets.token_bytes(32)).decode()
            for f in (self.files / "security").iterdir():
                (self.security / f.name).write_text(f.read_text().replace("${CCP_ENCRYPTION_KEY}", key))
        self.ssh(addr, "mkdir -p security")
        self.scp(addr, sorted(self.security.iterdir()), "security/")
        self.ssh(addr, "sudo install -d -m 0700 /etc/kubernetes/ccp && sudo install -m 0600 security/* /etc/kubernetes/ccp/ "
                       "&& rm -rf security")

    def upload_patches(self, addr):
        patches = sorted((ROOT / "examples" / "lab" / "kubeadm-patches").iterdir())
        self.ssh(addr, "mkdir -p patches")
        self.scp(addr, patches, "patches/")
        self.ssh(addr, "sudo install -d -m 0700 /etc/ccp/kubeadm/patches && sudo install -m 0600 patches/* /etc/ccp/kubeadm/patches/")

    def init(self):
        name, addr = self.of("control-plane")[0]
        self.upload_patches(addr)
        self.upload_security(addr)
        self.scp(addr, [self.files / "kubeadm" / name / "init.yaml"], "")
        self.ssh(addr, "set -e; KEY=$(sudo kubeadm certs certificate-key); "
                       "sed \"s/\\${CCP_CERTIFICATE_KEY}/$KEY/\" init.yaml > init-filled.yaml; "
                       "sudo kubeadm init --config init-filled.yaml --upload-certs > kubeadm-init.log 2>&1 "
                       "|| { tail -30 kubeadm-init.log; exit 1; }")
        url = f"https://{self.net}.5:6443/readyz"
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API does not answer at {url}")
            time.sleep(1)

    def secrets(self, control_plane: bool) -> dict:
        _, first = self.of("control-plane")[0]
        out = {"CCP_BOOTSTRAP_TOKEN": self.ssh(first, "sudo kubeadm token create --ttl 30m").strip(),
               "CCP_CA_CERT_HASH": "sha256:" + self.ssh(first, "openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | "
                                                        "openssl rsa -pubin -outform der 2>/dev/null | sha256sum | cut -d' ' -f1").strip(),
               "CCP_CERTIFICATE_KEY": ""}
        if control_plane:
            key = self.ssh(first, "sudo kubeadm certs certificate-key").strip()
            self.ssh(first, f"sudo kubeadm init phase upload-certs --upload-certs --certificate-key {key} >/dev/null")
            out["CCP_CERTIFICATE_KEY"] = key
        return out

    def join(self, name, addr, secrets, control_plane):
        if control_plane:
            self.upload_patches(addr)
            self.upload_security(addr)
        self.scp(addr, [self.files / "kubeadm" / name / "join.yaml"], "")
        sed = " ".join(f"-e 's|${{{k}}}|{v}|'" for k, v in secrets.items())
        self.ssh(addr, f"set -e; sed {sed} join.yaml > join-filled.yaml; "
                       "sudo kubeadm join --config join-filled.yaml > kubeadm-join.log 2>&1 || { tail -30 kubeadm-join.log; exit 1; }")

    def join_control_planes(self):
        secrets = self.secrets(control_plane=True)   # an operator makes one token and key for all of them
        for name, addr in self.of("control-plane")[1:]:
            self.join(name, addr, secrets, True)

    def join_workers(self):
        secrets = self.secrets(control_plane=False)
        self.each(self.of("worker"), lambda n, a: self.join(n, a, secrets, False))

    def fetch_kubeconfig(self):
        _, first = self.of("control-plane")[0]
        self.kubeconfig.write_text(self.ssh(first, "sudo cat /etc/kubernetes/admin.conf"))
        self.kubeconfig.chmod(0o600)

    def cni(self):
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", self.files / "cni" / "kube-router.yaml")
        self.kubectl("wait", "--for=condition=Ready", "node", "--all", f"--timeout={WAIT}s")
        self.kubectl("-n", "kube-system", "rollout", "status", "ds/kube-router", f"--timeout={WAIT}s")

    def addons_step(self):
        for f in self.addons:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", f)
        self.kubectl("-n", "local-path-storage", "rollout", "status", "deploy/local-path-provisioner", f"--timeout={WAIT}s")

    def bench(self) -> dict:
        t0 = time.perf_counter()
        try:
            for phase, fn in (("provision", self.provision), ("hosts/prepare", self.prepare),
                              ("loadbalancer/nginx", self.loadbalancer), ("kubeadm/init", self.init),
                              ("kubeadm/join-control-plane", self.join_control_planes),
                              ("kubeadm/join-workers", self.join_workers), ("kubeconfig", self.fetch_kubeconfig),
                              ("cni", self.cni), ("addons", self.addons_step)):
                self.step(phase, fn)
            return {"phases": self.times, "wall": time.perf_counter() - t0}
        finally:
            self.destroy()

    def destroy(self):
        Stage.now = "raw destroy"
        errors = []
        for name, _, _ in self.nodes:
            try:
                self.host.destroy(self.cluster, name)
            except Exception as exc:   # keep going: every machine gets its chance
                errors.append(f"{name}: {exc}")
        try:
            self.host.remove_bridge_if_unused(self.bridge)
        except Exception as exc:
            errors.append(f"bridge {self.bridge}: {exc}")
        if errors:
            print("!! raw destroy: " + "; ".join(errors), file=sys.stderr)


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# ---------------------------------------------------------------- report

def report(counts, a: dict | None, b: dict | None) -> None:
    a_ph, b_ph = (a or {}).get("phases", {}), (b or {}).get("phases", {})
    print(f"\n{counts.load_balancers} load balancer, {counts.control_planes} control planes, {counts.workers} worker(s) "
          "on local machines (systemd-nspawn), installed from the lab bundle; validation excluded on both sides")
    print(f"{'phase':<28}{'ccp s':>9}{'raw s':>9}{'ratio':>8}")
    order = PHASES + [p for p in a_ph if p not in PHASES]
    for p in order:
        ca, rb = a_ph.get(p), b_ph.get(p)
        if ca is None and rb is None:
            continue
        ratio = f"{ca / rb:.2f}" if ca is not None and rb else "-"
        note = "" if p in PHASES else "   (ccp only)"
        fa, fb = (f"{x:.1f}" if x is not None else "-" for x in (ca, rb))
        print(f"{p:<28}{fa:>9}{fb:>9}{ratio:>8}{note}")
    if a and b:
        same = sum(a_ph.get(p, 0) for p in PHASES)
        print(f"{'sum of shared phases':<28}{same:>9.1f}{sum(b_ph.values()):>9.1f}{same / sum(b_ph.values()):>8.2f}")
        print(f"{'total (wall)':<28}{a['wall']:>9.1f}{b['wall']:>9.1f}{a['wall'] / b['wall']:>8.2f}")
        print(f"\nccp vs raw, total wall: {a['wall'] / b['wall']:.2f}x (target <= 1.3x; ccp's total includes its "
              "render, preflight and bookkeeping phases)")
    if a:
        print(f"ccp's own CPU: {a['cpu']:.1f} s user+sys over {a['wall']:.1f} s wall = {100 * a['cpu'] / a['wall']:.1f} % "
              "(target <= 3 %; the ccp process and the children it waited for — ip, mount, etc.; the machines run "
              "detached and are not counted)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--load-balancers", type=int, default=1)
    ap.add_argument("--control-planes", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    counts = ap.parse_args()
    if os.geteuid() != 0 or not BUNDLE.exists() or not KUBECTL.exists():
        print("install_local: skipped (needs root, .tools/lab-bundle.tar from `make lab-bundle` and .tools/lab)")
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # so the finally blocks destroy what was started
    work = Path(tempfile.mkdtemp(prefix="ccp-bench-install-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ccp-bench", "-f", str(key)], check=True)
    a = b = None
    ok = False
    try:
        a = bench_ccp(work, key, counts)
        print(f"ccp: done in {a['wall']:.1f} s", flush=True)
        b = Raw(work, key, counts).bench()
        print(f"raw: done in {b['wall']:.1f} s", flush=True)
        ok = True
    except BaseException as exc:
        print(f"\n!! stopped at: {Stage.now}: {exc}", file=sys.stderr)
        if not isinstance(exc, Exception):
            raise
    finally:
        report(counts, a, b)
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work} (no machines: everything started was destroyed)", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
