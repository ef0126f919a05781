"""A real process running a three-phase workflow through the real engine, for kill, resume and
lock tests. Phases are test doubles (named so); the runner, journal and lock are the real ones.

usage: python -m tests.engine.harness STATE_DIR WORK_DIR [--input-b VALUE] [--fail-b]
Phase "b" writes WORK_DIR/b.started, then waits until WORK_DIR/b.release exists.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ccp.engine import runner
from ccp.engine.journal import Journal
from ccp.engine.phase import Action, Context, Phase
from ccp.errors import RemoteError


class RecordingReporter:
    def __init__(self):
        self.lines: list[str] = []

    def phase_skipped(self, phase, reason):
        print(f"skip {phase.name}: {reason}", flush=True)

    def phase_started(self, phase, reason, actions):
        print(f"start {phase.name}: {reason}", flush=True)

    def phase_done(self, phase, duration, actions):
        print(f"done {phase.name}", flush=True)

    def phase_failed(self, phase, message, duration):
        print(f"failed {phase.name}: {message}", flush=True)

    def finished(self, results):
        print("finished " + ",".join(f"{r.name}={r.status}" for r in results), flush=True)


class FileWritingPhaseFake(Phase):
    """Creates WORK/<name>.out unless it exists (probe first, act on the difference)."""

    layer = "prepare"
    summary = "write a marker file"

    def __init__(self, name: str, work: Path, value: str = "v1"):
        self.name = name
        self.work = work
        self.value = value

    def inputs(self, ctx):
        return {"value": self.value}

    def target(self) -> Path:
        return self.work / f"{self.name}.out"

    def plan(self, ctx):
        if self.target().exists() and self.target().read_text() == self.value:
            return []
        return [Action("write", str(self.target()), "missing or stale")]

    def apply(self, ctx, actions):
        with open(self.work / "applied.log", "a") as f:
            f.write(self.name + "\n")
        self.target().write_text(self.value)
        return {"file": str(self.target())}


class BlockingPhaseFake(FileWritingPhaseFake):
    def __init__(self, name, work, value="v1", fail=False):
        super().__init__(name, work, value)
        self.fail = fail

    def apply(self, ctx, actions):
        (self.work / f"{self.name}.started").write_text("")
        while not (self.work / f"{self.name}.release").exists():
            time.sleep(0.02)
        if self.fail:
            raise RemoteError("node-7: command exited 1", "look at node-7's log")
        return super().apply(ctx, actions)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("state")
    ap.add_argument("work")
    ap.add_argument("--input-b", default="v1")
    ap.add_argument("--fail-b", action="store_true")
    ap.add_argument("--until")
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    work = Path(args.work)
    flow = [FileWritingPhaseFake("a", work), BlockingPhaseFake("b", work, args.input_b, args.fail_b),
            FileWritingPhaseFake("c", work)]
    ctx = Context(state_dir=Path(args.state), reporter=RecordingReporter())
    try:
        runner.run(flow, ctx, Journal(Path(args.state)), command="harness", until=args.until,
                   skip=[s for s in args.skip.split(",") if s], resume_hint="harness --resume")
    except Exception as exc:  # the CLI's job in real life; here: print and exit with its code
        print(f"error: {exc} | {getattr(exc, 'resolution', '')}", flush=True)
        raise SystemExit(getattr(exc, "code", 70))


if __name__ == "__main__":
    main()
