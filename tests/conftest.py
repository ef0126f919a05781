"""Shared fixtures: an isolated HOME with a known SSH public key, config variants, and ways to
run ccp in-process (fast) or as a real subprocess (for kill, lock and secret tests)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import settings

# CI explores a fixed set of examples (reproducible); local runs explore new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
PASSWORD = "vc-Pa55word-for-tests"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    from ccp import redact

    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(FIXTURES / "ssh" / "id_ed25519.pub", home / ".ssh" / "id_ed25519.pub")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("VSPHERE_PASSWORD", PASSWORD)
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("CCP_STATE_DIR", raising=False)
    monkeypatch.delenv("CCP_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    redact.clear()
    yield
    redact.clear()


def example_data(name: str = "cluster.yaml") -> dict:
    return yaml.safe_load((EXAMPLES / name).read_text())


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def small_config() -> dict:
    """1 control plane, 1 worker, no NGINX nodes: keepalived on the control plane."""
    data = example_data()
    data["metadata"]["name"] = "lab"
    spec = data["spec"]
    spec["nodes"]["controlPlane"] = {"count": 1, "cpus": 2, "memoryMiB": 4096, "diskGiB": 40}
    spec["nodes"]["workers"] = [{"name": "pool-a", "count": 1, "cpus": 2, "memoryMiB": 4096, "diskGiB": 40}]
    spec["loadBalancer"]["nginx"] = {"count": 0}
    spec["validation"]["pvc"]["crossNode"] = False
    return data


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def run_ccp(*args: str) -> Result:
    """ccp in this process: the real CLI entry point, output captured."""
    from ccp.cli import run

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


def ccp_subprocess(*args: str, env: dict | None = None, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ccp", *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kw)


@pytest.fixture
def example_config(tmp_path) -> Path:
    return write_config(tmp_path / "cluster.yaml", example_data())


def pytest_terminal_summary(terminalreporter):
    """The real-cluster suites' own count, so CI's log says whether they ran or were skipped (and why)."""
    stats = terminalreporter.stats
    counts = {}
    reasons = set()
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in stats.get(outcome, []):
            if "tests/e2e/" in getattr(rep, "nodeid", "") or "tests/e2e/" in str(getattr(rep, "fspath", "")):
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome == "skipped" and isinstance(rep.longrepr, tuple):
                    reasons.add(rep.longrepr[2].removeprefix("Skipped: "))
    if counts:
        terminalreporter.write_line("real-cluster suites (tests/e2e): " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        for reason in sorted(reasons):
            terminalreporter.write_line(f"  skipped: {reason}")
    local = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for rep in stats.get(outcome, []):
            if "tests/local/" in getattr(rep, "nodeid", ""):
                local[outcome] = local.get(outcome, 0) + 1
    if local:
        from tests.local import TIMES

        terminalreporter.write_line("local machines suites (tests/local): " + ", ".join(f"{n} {k}" for k, n in local.items()))
        if TIMES:
            terminalreporter.write_line("  real HA cluster times: " + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))
