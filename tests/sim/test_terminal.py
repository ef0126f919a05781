"""ccp at a real terminal: a pseudo-terminal (pexpect), where rich draws its live spinner — the path a
piped test never takes. Against vcsim: install and destroy finish, Ctrl-C ends a run at once with
the resume command, a refused prompt changes nothing, and a planted secret never reaches the screen."""

from __future__ import annotations

import os
import sys
import time

import pytest
import yaml

from tests.conftest import PASSWORD

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.sim


def spawn(args, cwd, env=None, timeout=60):
    full = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "50", **(env or {})}
    full.pop("NO_COLOR", None)   # colours and cursor movement, as a person sees them
    child = pexpect.spawn(sys.executable, ["-m", "ccp", *map(str, args)], cwd=str(cwd), env=full,
                          timeout=timeout, encoding="utf-8", codec_errors="replace", dimensions=(50, 160))
    child.logfile_read = screen = Screen()
    return child, screen


class Screen:
    """Everything the terminal received."""

    def __init__(self):
        self.parts: list[str] = []

    def write(self, text):
        self.parts.append(text)

    def flush(self):
        pass

    @property
    def text(self) -> str:
        return "".join(self.parts)


def finish(child, timeout=60) -> int:
    child.expect(pexpect.EOF, timeout=timeout)
    child.close()
    return child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)


def test_install_and_destroy_finish_at_a_terminal_and_show_no_secret(sim_config, tmp_path, monkeypatch):
    path, data, write = sim_config
    monkeypatch.setenv("VSPHERE_PASSWORD", PASSWORD)
    child, screen = spawn(["install", "--config", path, "--until", "provision", "--yes"], tmp_path)
    assert finish(child) == 0, screen.text[-3000:]
    assert "install finished" in screen.text and "phase timings" in screen.text
    child, screen2 = spawn(["destroy", "--config", path, "--yes"], tmp_path)
    assert finish(child) == 0, screen2.text[-3000:]
    assert "destroyed 4 machines" in screen2.text
    assert PASSWORD not in screen.text + screen2.text
    # the journal no longer claims machines that are gone; reading it needs no password
    import json

    from tests.conftest import run_ccp

    monkeypatch.delenv("VSPHERE_PASSWORD")
    phases = {p["phase"]: p["status"] for p in json.loads(run_ccp("phases", "--config", path, "--output", "json").out)["phases"]}
    assert phases["provision"] == "pending" and phases["render"] == "done"


def test_ctrl_c_ends_the_run_at_once_with_the_resume_command(sim_config, tmp_path, monkeypatch):
    path, data, write = sim_config
    monkeypatch.delenv("CCP_VCSIM_SHIM")      # without it vcsim reports no guest IP: provision waits
    data["spec"]["vsphere"]["ipTimeoutSeconds"] = 120
    write(data)
    child, screen = spawn(["install", "--config", path, "--until", "provision", "--yes"], tmp_path)
    child.expect("waiting for the addresses", timeout=60)
    time.sleep(0.5)
    sent = time.monotonic()
    child.sendintr()
    code = finish(child, timeout=10)
    took = time.monotonic() - sent
    assert code == 130, screen.text[-3000:]
    print(f"Ctrl-C ended the run in {took:.2f}s")
    assert took < 1.0, f"Ctrl-C took {took:.2f}s to end the run"
    text = screen.text
    assert "interrupted in phase provision" in text
    assert f"ccp install --config {path} --resume" in text.replace("\r\n", "")
    table = text.split("phase timings", 1)[1]
    assert "provision" in table and "interrupted" in table
    assert PASSWORD not in text
    # the journal agrees: the phase is interrupted, and a resume says so
    child, screen = spawn(["phases", "--config", path], tmp_path)
    assert finish(child) == 0 and "interrupted" in screen.text


def test_no_at_the_prompt_changes_nothing(sim_config, tmp_path, sim):
    path, data, write = sim_config
    before = set(sim.vms())
    child, screen = spawn(["install", "--config", path, "--until", "provision"], tmp_path)
    child.expect("Apply this plan", timeout=60)
    child.sendline("n")
    assert finish(child) == 0, screen.text[-3000:]
    assert "nothing changed" in screen.text and "interrupted" not in screen.text
    assert set(sim.vms()) == before
    child, screen = spawn(["install", "--config", path, "--until", "provision", "--yes"], tmp_path)
    assert finish(child) == 0
    child, screen = spawn(["destroy", "--config", path], tmp_path)
    child.expect(r"Destroy these 4 machines\?", timeout=60)
    child.sendline("n")
    assert finish(child) == 0 and "nothing changed" in screen.text
    assert len(set(sim.vms()) - before) == 4


def test_plan_detailed_exitcode(sim_config, tmp_path):
    from tests.conftest import run_ccp

    path, data, write = sim_config
    r = run_ccp("plan", "--config", path, "--detailed-exitcode")
    assert r.code == 2, r.text
    assert "(read-only)" in r.out      # preflight and validation checks are listed, not counted
    plan = yaml.safe_load(run_ccp("plan", "--config", path, "--output", "json").out)
    preflight = next(p for p in plan["phases"] if p["phase"] == "preflight/vsphere")
    assert all(not a["changes"] for a in preflight["actions"]) and plan["summary"]["validation"] == 0
