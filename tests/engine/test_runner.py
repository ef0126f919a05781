"""The phase runner and journal with real processes: SIGKILL mid-phase then resume, changed
inputs re-run with the reason, lock contention, failures journaled, --until and --skip-phases."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path


from tests.conftest import ROOT


def start(state: Path, work: Path, *extra: str) -> subprocess.Popen:
    work.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "tests.engine.harness", str(state), str(work), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(state: Path, work: Path, *extra: str) -> tuple[int, str]:
    (work / "b.release").parent.mkdir(exist_ok=True)
    (work / "b.release").write_text("")
    p = start(state, work, *extra)
    out, _ = p.communicate(timeout=60)
    return p.returncode, out


def wait_for(path: Path, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.02)


def events(state: Path) -> list[dict]:
    return [json.loads(line) for line in (state / "journal.jsonl").read_text().splitlines() if line.strip()]


def applied(work: Path) -> list[str]:
    return (work / "applied.log").read_text().split()


def test_sigkill_in_a_phase_then_resume(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    p = start(state, work)
    wait_for(work / "b.started")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    last = {e["phase"]: e["event"] for e in events(state) if "phase" in e}
    assert last == {"a": "done", "b": "started"}

    code, out = run(state, work)
    assert code == 0, out
    assert "skip a: already done" in out
    assert "start b: resuming: the previous run was interrupted in this phase" in out
    assert "start c: first run" in out
    assert applied(work) == ["a", "b", "c"]  # a ran once in all


def test_second_run_is_a_no_op(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    assert run(state, work)[0] == 0
    code, out = run(state, work)
    assert code == 0
    assert "finished a=already done,b=already done,c=already done" in out
    assert applied(work) == ["a", "b", "c"]


def test_changed_input_reruns_with_reason(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    run(state, work)
    code, out = run(state, work, "--input-b", "v2")
    assert code == 0
    assert "start b: inputs changed: value" in out
    assert "skip a: already done" in out and "skip c: already done" in out
    assert (work / "b.out").read_text() == "v2"


def test_drift_found_by_probe_reruns(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    run(state, work)
    (work / "c.out").unlink()
    code, out = run(state, work)
    assert "start c: the probe found 1 thing(s) to do" in out
    assert (work / "c.out").exists()


def test_lock_refuses_a_second_run_and_frees_on_death(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    first = start(state, work)
    wait_for(work / "b.started")
    second = subprocess.run([sys.executable, "-m", "tests.engine.harness", str(state), str(tmp_path / "w2")],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert second.returncode == 3
    assert "another ccp run holds the lock" in second.stdout and f"pid {first.pid}" in second.stdout
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    code, out = run(state, work)
    assert code == 0, out


def test_failure_is_journaled_with_resume_hint(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    code, out = run(state, work, "--fail-b")
    assert code == 5
    assert "continue with `harness --resume`" in out
    failed = [e for e in events(state) if e.get("event") == "failed"]
    assert failed[0]["phase"] == "b" and "node-7" in failed[0]["error"]
    assert not (work / "c.out").exists()
    code, out = run(state, work)
    assert "start b: retrying: the previous run failed here (node-7: command exited 1)" in out


def test_until_and_skip(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    code, out = run(state, work, "--until", "b")
    assert code == 0 and applied(work) == ["a", "b"]
    code, out = run(state, work, "--skip", "c")
    assert "finished a=already done,b=already done,c=skipped" in out
    code, out = run(state, work, "--until", "nope")
    assert code == 2 and "there is no phase 'nope'" in out and "a, b, c" in out


def test_state_files_are_private(tmp_path):
    state, work = tmp_path / "state", tmp_path / "work"
    run(state, work)
    assert oct(state.stat().st_mode & 0o777) == "0o700"
    assert oct((state / "journal.jsonl").stat().st_mode & 0o777) == "0o600"
    assert oct((state / "lock").stat().st_mode & 0o777) == "0o600"


def test_torn_journal_line_is_ignored(tmp_path):
    from ccp.engine.journal import Journal

    state, work = tmp_path / "state", tmp_path / "work"
    run(state, work)
    with open(state / "journal.jsonl", "a") as f:
        f.write('{"ts": 1, "run": "x", "event": "done", "pha')
    assert set(Journal(state).records()) == {"a", "b", "c"}


def test_a_failed_attempt_keeps_what_the_last_good_one_recorded(tmp_path):
    """Found on real nodes: a provision refused on a changed address made later runs forget the cluster's
    machines (a scale-in would then not have drained the nodes it removed). The last outputs stay known."""
    from ccp.engine.journal import Journal
    from ccp.engine.runner import recall_outputs

    j = Journal(tmp_path / "state")
    j.append("done", phase="provision", fingerprint="a", outputs={"nodes": {"n1": {"address": "10.0.0.1"}}})
    j.append("started", phase="provision", fingerprint="b")
    j.append("failed", phase="provision", fingerprint="b", error="address changed")
    rec = j.records()["provision"]
    assert rec.status == "failed" and rec.outputs == {"nodes": {"n1": {"address": "10.0.0.1"}}}

    class Ctx:
        outputs: dict = {}
    ctx = Ctx()
    recall_outputs(ctx, j.records())
    assert ctx.outputs["provision"]["nodes"]["n1"]["address"] == "10.0.0.1"
    j.reset(["provision"], "destroyed")
    assert "provision" not in j.records(), "a reset still forgets"
