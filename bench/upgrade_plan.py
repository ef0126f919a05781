"""Plan an upgrade of 5 control planes + 500 workers (maxUnavailable 10) and time it (target < 1 s).

usage: python bench/upgrade_plan.py   (prints the time and the step count; asserts nothing)
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from ccp.config.load import load
    from ccp.upgrade.plan import plan

    data = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    data["spec"]["nodes"]["controlPlane"]["count"] = 5
    data["spec"]["nodes"]["workers"] = [{"name": "pool", "count": 500, "cpus": 2, "memoryMiB": 4096, "diskGiB": 40}]
    data["spec"]["nodes"]["network"]["cidr"] = "10.10.0.0/22"
    data["spec"]["nodes"]["network"]["addresses"] = "10.10.0.20-10.10.3.200"
    data["spec"]["upgrade"] = {"maxUnavailable": 10}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.yaml"
        path.write_text(yaml.safe_dump(data))
        cfg = load(path, env={"VSPHERE_PASSWORD": "bench-password"}, defer_secrets=True).config
        t0 = time.perf_counter()
        steps = plan(cfg, "1.36.2", "1.37.1")
        took = time.perf_counter() - t0
    print(f"5 control planes + 500 workers: {len(steps)} steps planned in {took * 1000:.1f} ms (target < 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
