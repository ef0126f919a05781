"""Cold start of `ccp --help` against the bare framework (`import typer`) and `python -c pass`,
measured side by side in one run, median of N each. Prints ratios; asserts nothing.

Target: ccp --help within 2.5x of `import typer` (heavy libraries load only when a command needs them).
usage: python bench/cli_startup.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def median_seconds(argv: list[str], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    py = sys.executable
    cases = {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import typer'": [py, "-c", "import typer"],
        "ccp --help": [py, "-m", "ccp", "--help"],
        "ccp version": [py, "-m", "ccp", "version"],
    }
    for argv in cases.values():  # warm the page cache and .pyc files
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # interleave rounds so machine noise hits every case alike
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(n):
        for name, argv in cases.items():
            samples[name].append(median_seconds(argv, 1))
    med = {k: statistics.median(v) for k, v in samples.items()}
    base = med["python -c 'import typer'"]
    print(f"{'case':<28}{'median ms':>10}{'vs typer':>10}")
    for name, t in med.items():
        print(f"{name:<28}{t * 1000:>10.1f}{t / base:>9.2f}x")
    ratio = med["ccp --help"] / base
    print(f"\nccp --help / import typer = {ratio:.2f}x (target <= 2.5x): {'OK' if ratio <= 2.5 else 'OVER TARGET'}")
    heavy = subprocess.run([py, "-X", "importtime", "-m", "ccp", "--help"], capture_output=True, text=True).stderr
    loaded = [m for m in ("pydantic", "jinja2", "ruamel", "pyVmomi", "lightkube", "asyncssh", "hcl2", "yaml")
              if f" {m}" in heavy or f"| {m}" in heavy]
    print("heavy modules imported by ccp --help:", ", ".join(loaded) or "none")


if __name__ == "__main__":
    main()
