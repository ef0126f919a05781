"""The journal: one JSON line per event in <state>/journal.jsonl, and the lock beside it.

A phase's status is its last event: started (and nothing after it: the run was killed),
done, failed or skipped; a "reset" event (ccp destroy) makes it pending again. Lines are
appended in one write each and fsync'd; a torn last line
from a killed process is ignored when reading.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccp import redact
from ccp.engine.files import ensure_dir
from ccp.errors import PreflightError

JOURNAL = "journal.jsonl"
LOCK = "lock"


@dataclass
class PhaseRecord:
    phase: str
    status: str                 # started | done | failed | skipped
    fingerprint: str = ""
    inputs: dict | None = None
    outputs: dict | None = None
    error: str = ""
    duration: float | None = None
    ts: float = 0.0
    run: str = ""

    @property
    def interrupted(self) -> bool:
        return self.status == "started"


class Journal:
    def __init__(self, state_dir: Path):
        self.state_dir = state_dir
        self.path = state_dir / JOURNAL
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self._lock_fd: int | None = None

    # -------------------------------------------------- lock
    def lock(self, command: str) -> None:
        ensure_dir(self.state_dir)
        path = self.state_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise PreflightError(
                f"another ccp run holds the lock on {self.state_dir} ({holder})",
                "wait for it to finish; the lock is released the moment that process ends") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode())
        os.fsync(fd)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -------------------------------------------------- writing
    def append(self, event: str, **fields: Any) -> None:
        ensure_dir(self.state_dir)
        entry = {"ts": round(time.time(), 3), "run": self.run_id, "event": event, **fields}
        line = redact.scrub(json.dumps(entry, sort_keys=True, default=str)) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    # -------------------------------------------------- reading
    def events(self) -> list[dict]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn line from a killed process
        return out

    def records(self) -> dict[str, PhaseRecord]:
        """Last known state of each phase."""
        recs: dict[str, PhaseRecord] = {}
        for e in self.events():
            if "phase" in e and e["event"] == "reset":
                recs.pop(e["phase"], None)   # what the phase made is gone (ccp destroy): pending again
                continue
            if "phase" not in e or e["event"] not in ("started", "done", "failed", "skipped"):
                continue
            prev = recs.get(e["phase"])
            outputs = e.get("outputs")
            if outputs is None and prev is not None and e["event"] in ("started", "failed"):
                # A later attempt that failed does not unmake what the last good one recorded (the machines
                # of a provision refused on a changed address are still there, and still the cluster's).
                outputs = prev.outputs
            rec = PhaseRecord(phase=e["phase"], status=e["event"], fingerprint=e.get("fingerprint", ""),
                              inputs=e.get("inputs"), outputs=outputs, error=e.get("error", ""),
                              duration=e.get("duration"), ts=e["ts"], run=e["run"])
            if rec.status == "skipped" and prev is not None and prev.status == "done":
                continue  # skipping a done phase does not undo it
            recs[e["phase"]] = rec
        return recs

    def reset(self, phases: list[str], reason: str) -> None:
        """Mark phases as not done any more, e.g. after their machines were destroyed."""
        for name in phases:
            self.append("reset", phase=name, reason=reason)

    def last_run(self) -> dict | None:
        runs = [e for e in self.events() if e["event"] in ("run-started", "run-finished")]
        return runs[-1] if runs else None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096) or b"{}")
        return f"pid {info.get('pid')} on {info.get('host')}, `ccp {info.get('command')}` since {info.get('since')}"
    except (OSError, ValueError):
        return "holder unknown"
