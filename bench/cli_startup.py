"""Cold start of ccp's read commands (`ccp --help`, `ccp version`, `ccp phases --help`, `ccp addons
list`) against the bare framework (`import typer`) and `python -c pass`, measured side by side in one
run, median of N each. Prints ratios and the heavy modules each command imported; asserts nothing.

Target: every read command within 2x of `import typer` (heavy libraries load only when a command needs them).
usage: python bench/cli_startup.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


READ_COMMANDS = ("ccp --help", "ccp version", "ccp phases --help", "ccp addons list")
HEAVY = ("pydantic", "jinja2", "ruamel", "pyVmomi", "lightkube", "asyncssh", "hcl2", "yaml", "rich", "httpx")
TARGET = 2.0


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
        "ccp phases --help": [py, "-m", "ccp", "phases", "--help"],
        "ccp addons list": [py, "-m", "ccp", "addons", "list"],
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
    print()
    for name in READ_COMMANDS:
        ratio = med[name] / base
        print(f"{name + ' / import typer':<36} = {ratio:.2f}x (target <= {TARGET}x): {'OK' if ratio <= TARGET else 'OVER TARGET'}")
    print()
    for name in READ_COMMANDS:
        print(f"heavy modules imported by {name + ':':<20}", ", ".join(heavy_modules(cases[name])) or "none")


def heavy_modules(argv: list[str]) -> list[str]:
    """The heavy libraries a command imported (python -X importtime names every module it loads)."""
    trace = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True).stderr
    loaded = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in trace.splitlines() if "|" in line}
    return [m for m in HEAVY if m in loaded]


if __name__ == "__main__":
    main()
