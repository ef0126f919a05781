"""Render time against cluster size: 5 control planes with 50 to 5,000 workers (a /16 node network,
pools of at most 1,000), in one run. Prints wall and CPU seconds, the CPU time per node (flat =
linear), the share of the parse checks (every rendered YAML is loaded right after rendering), and
the 5,000 / 500 ratio (linear is ~10x). Asserts nothing.

Target: 5 control planes + 5,000 workers in <= 2 s, linear in workers.
usage: python bench/render_scale.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
POOL_MAX = 1000
SIZES = (50, 500, 1000, 2500, 5000)


def config(tmp: Path, workers: int) -> Path:
    data = yaml.safe_load((ROOT / "examples" / "cluster.yaml").read_text())
    spec = data["spec"]
    spec["nodes"]["controlPlane"]["count"] = 5
    pool = spec["nodes"]["workers"][0]
    # a pool holds at most 1,000 workers (the model says so): larger clusters have several pools
    spec["nodes"]["workers"] = [{**pool, "name": f"pool-{i + 1}", "count": min(POOL_MAX, workers - i * POOL_MAX)}
                                for i in range(-(-workers // POOL_MAX))]
    # a /16: room for 5,000 workers and more
    spec["nodes"]["network"].update(cidr="10.10.0.0/16", gateway="10.10.0.1", addresses="10.10.1.1-10.10.254.250")
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
        print(f"{'workers':>8}{'files':>8}{'render s':>10}{'cpu s':>8}{'+write s':>10}{'ms/node':>9}{'unparsed s':>12}")
        wall, cpu = {}, {}
        for workers in SIZES:
            loaded = load(config(tmp, workers))
            wall[workers], cpu[workers], out = timed(lambda: render.render_all(loaded))
            t0 = time.perf_counter()   # written once: 25,000 files three times over is a disk benchmark
            render.write(out, tmp / f"out{workers}")
            written = wall[workers] + time.perf_counter() - t0
            shutil.rmtree(tmp / f"out{workers}")
            print(f"{workers:>8}{len(out.files):>8}{wall[workers]:>10.3f}{cpu[workers]:>8.3f}{written:>10.3f}"
                  f"{cpu[workers] / (workers + 5) * 1000:>9.3f}{unparsed(render, loaded):>12.3f}")
    big = SIZES[-1]
    print(f"\n{big:,} workers / 500 workers = {cpu[big] / cpu[500]:.1f}x in CPU time, {wall[big] / wall[500]:.1f}x in wall "
          "time (linear is ~10x)")
    print(f"{big:,} workers render in {wall[big]:.2f} s, {cpu[big]:.2f} s of CPU (target <= 2 s): "
          f"{'OK' if wall[big] <= 2 else 'OVER TARGET'}")
    print("cpu s: this process's CPU time (steadier than wall time on a shared host); ms/node: of CPU")
    print("unparsed s: the same render without the parse checks (their share of the time, not a mode of ccp)")


def timed(fn, runs: int = 3):
    """Median wall and CPU seconds of ``runs`` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), out


def unparsed(render, loaded) -> float:
    """CPU seconds of one render with the parse checks switched off: how much of the time they take."""
    check = render._parse_check
    render._parse_check = lambda dest, text: None
    try:
        return timed(lambda: render.render_all(loaded), 1)[1]
    finally:
        render._parse_check = check


if __name__ == "__main__":
    sys.exit(main())
