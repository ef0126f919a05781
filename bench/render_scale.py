"""Render time against cluster size: 5 control planes with 50, 100, 250 and 500 workers, in one
run. Prints seconds and the time per worker (flat = linear). Asserts nothing.

Target: 5 control planes + 500 workers in <= 1 s, linear in workers.
usage: python bench/render_scale.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def config(tmp: Path, workers: int) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    spec = data["spec"]
    spec["nodes"]["controlPlane"]["count"] = 5
    spec["nodes"]["workers"][0]["count"] = workers
    spec["nodes"]["network"].update(cidr="10.10.0.0/20", gateway="10.10.0.1", addresses="10.10.1.1-10.10.15.250")
    spec["loadBalancer"]["vip"] = "10.10.0.10"
    spec["ssh"]["publicKeyFile"] = str(ROOT / "tests" / "fixtures" / "ssh" / "id_ed25519.pub")
    path = tmp / f"c{workers}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    os.environ.setdefault("VSPHERE_PASSWORD", "bench-password")
    from ccp import render
    from ccp.config.load import load

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        render.render_all(load(config(tmp, 1)))  # warm: template compilation, imports
        print(f"{'workers':>8}{'files':>8}{'render s':>10}{'+write s':>10}{'ms/worker':>11}")
        for workers in (50, 100, 250, 500):
            loaded = load(config(tmp, workers))
            runs, files = [], 0
            for i in range(3):
                t0 = time.perf_counter()
                out = render.render_all(loaded)
                t1 = time.perf_counter()
                render.write(out, tmp / f"out{workers}-{i}")
                runs.append((t1 - t0, time.perf_counter() - t0))
                files = len(out.files)
            r = statistics.median(x for x, _ in runs)
            w = statistics.median(y for _, y in runs)
            print(f"{workers:>8}{files:>8}{r:>10.3f}{w:>10.3f}{r / (workers + 5) * 1000:>11.3f}")
    print("\ntarget: 500 workers render in <= 1 s; ms/worker roughly flat means linear")


if __name__ == "__main__":
    sys.exit(main())
