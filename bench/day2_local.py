"""Day-2 on one real cluster of local machines (1 load balancer, 3 control planes, 2 workers, from the lab
bundle), each command timed as an operator runs it:

  scale-out  one worker more in cluster.yaml, `ccp apply` (the peers re-run everything: kubespray#7509);
             the same figure as a share of the install's time says what "re-running" costs ccp
  backup     `ccp backup` (etcd snapshot and PKI, verified)
  restore    `ccp restore --from` that backup (every control plane, API back through the VIP)
  upgrade    `ccp upgrade` v1.35.0-alpha.0 -> v1.35.0-lab.1 from the bundle holding both; total, and per
             step from its journal (preflight, backup, stage, each control plane, each worker)

Prints seconds and ratios to the install measured in the same run; asserts nothing (machines are noisy).
Everything it starts is destroyed, also on failure. Needs root and the lab bundle (make lab-bundle).
usage: python bench/day2_local.py      (CCP_LAB_BUNDLE: another bundle holding both builds)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]
BUNDLE = Path(os.environ.get("CCP_LAB_BUNDLE", ROOT / ".tools" / "lab-bundle.tar"))   # make lab-bundle's
NAME, NET = "bench-d2", "10.83.0"
TO = "1.35.0-lab.1"


def main() -> None:
    if os.geteuid() != 0 or not BUNDLE.exists():
        sys.exit("needs root and the lab bundle (make lab-bundle)")
    work = Path(tempfile.mkdtemp(prefix="ccp-bench-day2-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    data = yaml.safe_load((ROOT / "examples" / "local.yaml").read_text())
    spec = data["spec"]
    data["metadata"]["name"] = NAME
    spec["kubernetes"]["billOfMaterials"] = str(ROOT / "examples" / "lab" / "bom.yaml")
    spec["kubernetes"]["kubeadm"]["patches"] = str(ROOT / "examples" / "lab" / "kubeadm-patches")
    spec["nodes"]["network"].update(cidr=f"{NET}.0/24", gateway=f"{NET}.1", dns=[f"{NET}.1"], addresses=f"{NET}.10-{NET}.40")
    spec["loadBalancer"]["vip"] = f"{NET}.5"
    spec["loadBalancer"]["nginx"]["count"] = 1
    spec["ssh"]["privateKeyFile"] = str(key)
    spec["offline"]["bundle"] = str(BUNDLE)
    config = work / "cluster.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {**os.environ, "CCP_STATE_DIR": str(work / "state"), "NO_COLOR": "1", "TF_CLI_CONFIG_FILE": "/dev/null"}
    times: dict[str, float] = {}

    def ccp(what: str, *args) -> str:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "ccp", *map(str, args)], capture_output=True, text=True, env=env, cwd=work)
        times[what] = time.monotonic() - t0
        if r.returncode:
            raise SystemExit(f"ccp {args[0]} failed (exit {r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        print(f"{what:<28} {times[what]:7.1f} s", flush=True)
        return r.stdout + r.stderr

    try:
        ccp("install", "install", "--config", config, "--yes")
        spec["nodes"]["workers"][0]["count"] = 3
        config.write_text(yaml.safe_dump(data, sort_keys=False))
        ccp("scale-out one worker", "apply", "--config", config, "--yes")
        out = ccp("backup", "backup", "--config", config)
        saved = next(line.split(" in ", 1)[1].strip() for line in out.splitlines() if line.startswith("backup saved in "))
        ccp("restore", "restore", "--config", config, "--from", saved, "--yes")
        since = len((work / "state" / "journal.jsonl").read_text().splitlines())
        ccp("upgrade", "upgrade", "--config", config, "--to", TO, "--bill-of-materials",
            ROOT / "examples" / "lab" / "bom-next.yaml", "--yes")
        steps = {}
        for line in (work / "state" / "journal.jsonl").read_text().splitlines()[since:]:
            e = json.loads(line)
            if e.get("phase", "").startswith(f"upgrade/{TO}/") and e.get("event") == "done" and "duration" in e:
                steps[e["phase"].split("/", 2)[2]] = e["duration"]
        print("\nupgrade, per step (journal):")
        for step, seconds in steps.items():
            print(f"  {step:<36} {seconds:7.1f} s")
        again = ccp("apply after the upgrade, until hosts/prepare", "install", "--config", config, "--yes", "--until", "hosts/prepare")
        print(f"nodes prepared again after the upgrade: {again.count('prepare host')} (0: each was stamped at the target)")
        install = times["install"]
        print(f"\nscale-out of one worker: {times['scale-out one worker']:.1f} s = "
              f"{times['scale-out one worker'] / install:.2f}x the install ({install:.1f} s)")
        print(f"upgrade of 3 control planes + 3 workers: {times['upgrade']:.1f} s = {times['upgrade'] / install:.2f}x the install")
        print(f"backup {times['backup']:.1f} s, restore {times['restore']:.1f} s")
    finally:
        subprocess.run([sys.executable, "-m", "ccp", "destroy", "--config", str(config), "--yes"], env=env, cwd=work,
                       capture_output=True)


if __name__ == "__main__":
    main()
