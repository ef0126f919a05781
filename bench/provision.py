"""Provision N VMs in vcsim three ways, side by side in one run, each on a fresh simulator:

  govc loop  a sequential shell loop of `govc vm.clone` (what a script would do; clone only)
  govc+cfg   the same loop, each VM also resized and powered on (`vm.change`, `vm.power`): ccp's work
  raw        pyvmomi: submit every CloneVM_Task at once, then wait for all (no bookkeeping at all)
  raw+cfg    the same, plus the reconfigure and power-on that ccp also does (the same work as ccp)
  ccp        `ccp install --until provision` with the native provisioner (its provision phase time
             from the journal: probe, clone, reconfigure, power on, DRS rules, wait for every IP)

Prints seconds and ratios; asserts nothing. Targets: ccp >= 5x faster than a govc loop and within
2x of raw pyvmomi, both doing the same work. vcsim finishes every task at once, so parallelism
helps far less here than against a real vCenter, where each clone takes seconds to minutes.
usage: python bench/provision.py [N]   (default 100)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".tools" / "bin"


class Sim:
    def __enter__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([str(BIN / "vcsim"), "-l", f"127.0.0.1:{self.port}", "-api-version", "8.0.3.0",
                                      "-dc", "1", "-cluster", "1", "-host", "3", "-vm", "2"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("vcsim did not start")

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()


def pyvmomi(sim):
    from pyVim.connect import SmartConnect

    si = SmartConnect(host="127.0.0.1", port=sim.port, user="u", pwd="p", disableSslCertValidation=True)
    dc = si.content.rootFolder.childEntity[0]
    template = next(v for v in dc.vmFolder.childEntity if v.name == "DC0_C0_RP0_VM0")
    return si, dc, template


def govc_loop(n: int, configure: bool = False) -> float:
    with Sim() as sim:
        env = {**os.environ, "GOVC_URL": f"https://127.0.0.1:{sim.port}/sdk", "GOVC_USERNAME": "u",
               "GOVC_PASSWORD": "p", "GOVC_INSECURE": "1"}
        t0 = time.perf_counter()
        for i in range(n):
            steps = [["vm.clone", "-vm", "DC0_C0_RP0_VM0", "-on=false", "-pool", "/DC0/host/DC0_C0/Resources",
                      "-ds", "LocalDS_0", f"govc-{i}"]]
            if configure:
                steps += [["vm.change", "-vm", f"govc-{i}", "-c", "2", "-m", "512"], ["vm.power", "-on", f"govc-{i}"]]
            for step in steps:
                subprocess.run([str(BIN / "govc"), *step], env=env, check=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def raw(n: int, configure: bool) -> float:
    from pyVim.task import WaitForTasks
    from pyVmomi import vim

    with Sim() as sim:
        si, dc, template = pyvmomi(sim)
        spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=template.resourcePool), powerOn=False)
        t0 = time.perf_counter()
        tasks = [template.CloneVM_Task(folder=dc.vmFolder, name=f"raw-{i}", spec=spec) for i in range(n)]
        WaitForTasks(tasks, si=si)
        if configure:
            vms = [t.info.result for t in tasks]
            WaitForTasks([vm.ReconfigVM_Task(vim.vm.ConfigSpec(numCPUs=2, memoryMB=512)) for vm in vms], si=si)
            WaitForTasks([vm.PowerOnVM_Task() for vm in vms], si=si)
        return time.perf_counter() - t0


def ccp(n: int) -> float:
    with Sim() as sim, tempfile.TemporaryDirectory() as d:
        si, dc, _ = pyvmomi(sim)
        dc.vmFolder.CreateFolder("ccp-vcsim")
        data = yaml.safe_load((ROOT / "examples" / "vcsim.yaml").read_text())
        spec = data["spec"]
        spec["vsphere"]["server"] = f"127.0.0.1:{sim.port}"
        spec["nodes"]["workers"][0].update(count=n - 1, memoryMiB=512)
        spec["nodes"]["network"].update(cidr="10.30.0.0/16", gateway="10.30.0.1", addresses="10.30.1.1-10.30.3.250")
        spec["loadBalancer"].update(vip="10.30.0.10", nginx={"count": 0})
        spec["ssh"]["publicKeyFile"] = str(ROOT / "tests" / "fixtures" / "ssh" / "id_ed25519.pub")
        cfg = Path(d) / "c.yaml"
        cfg.write_text(yaml.safe_dump(data))
        env = {**os.environ, "CCP_VCSIM_SHIM": "1", "VSPHERE_PASSWORD": "bench-pass", "NO_COLOR": "1"}
        subprocess.run([sys.executable, "-m", "ccp", "--state-dir", f"{d}/state", "install", "--config", str(cfg), "--yes",
                        "--until", "provision", "--ignore-preflight", "cluster-capacity,datastore-space"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        events = [json.loads(x) for x in (Path(d) / "state" / "journal.jsonl").read_text().splitlines()]
        return next(e["duration"] for e in events if e.get("phase") == "provision" and e["event"] == "done")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    if not (BIN / "vcsim").exists() or not (BIN / "govc").exists():
        raise SystemExit("build the simulator first: hack/vcsim.sh build")
    results = {"govc loop": govc_loop(n), "govc+cfg": govc_loop(n, True), "raw": raw(n, False),
               "raw+cfg": raw(n, True), "ccp": ccp(n)}
    print(f"{n} VMs on vcsim")
    for name, secs in results.items():
        print(f"  {name:<10}{secs:8.2f} s")
    print(f"\nccp vs govc+cfg  : {results['govc+cfg'] / results['ccp']:.1f}x faster (target >= 5x; same work)")
    print(f"ccp vs govc loop : {results['govc loop'] / results['ccp']:.1f}x faster (the loop only clones)")
    print(f"ccp vs raw+cfg   : {results['ccp'] / results['raw+cfg']:.2f}x the time (target <= 2x; same work)")
    print(f"ccp vs raw clone : {results['ccp'] / results['raw']:.2f}x the time (ccp also reconfigures, powers on, waits for IPs)")


if __name__ == "__main__":
    main()
