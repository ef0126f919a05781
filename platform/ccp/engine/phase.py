"""A phase probes the real state, says what it would do (plan), then does exactly that (apply).

``plan`` is the only dry run there is: `ccp plan` calls it for every phase and stops; `ccp install`
calls it, then ``apply`` with the actions it returned. A phase whose plan is empty has nothing to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

LAYERS = ("prepare", "infrastructure", "hosts", "cluster", "add-ons", "validation")
# Verbs that look without changing anything: a plan lists them but does not count them as changes.
READ_ONLY_VERBS = frozenset({"check", "wait for", "record"})


@dataclass(frozen=True)
class Action:
    verb: str            # create, update, delete, write, run, check ...
    target: str          # what it acts on, e.g. "cloud-init/demo-cp-1/user-data" or "VM demo-cp-1"
    reason: str = ""     # why: "new", "changed: cpus 2 -> 4" ...
    count: int = 1       # an action may stand for several like it ("24 files")

    @property
    def changes(self) -> bool:
        return self.verb not in READ_ONLY_VERBS

    def describe(self) -> str:
        text = f"{self.verb} {self.target}"
        return text + (f" ({self.reason})" if self.reason else "")


@dataclass
class Context:
    """What every phase gets. Applications subclass it to carry their own inputs."""

    state_dir: Path
    log: Any = None                                    # a logging.Logger
    reporter: Any = None                               # ccp.ui.Reporter or a test double
    outputs: dict[str, dict] = field(default_factory=dict)  # phase name -> outputs journaled by it
    journal: Any = None                                # the run's Journal, set by the runner (record_part)

    def record_part(self, name: str, outputs: dict) -> None:
        """One part of the running phase is finished for good (a node of a batch): journaled at once as
        done under a name of its own, so the phase, stopped later by a failure or Ctrl-C, resumes with
        only the parts not done: its plan finds this one in ``outputs`` (the runner recalls them)."""
        self.outputs[name] = outputs
        if self.journal is not None:
            self.journal.append("done", phase=name, outputs=outputs)


class Phase:
    name: ClassVar[str]
    layer: ClassVar[str]
    summary: ClassVar[str]
    always: ClassVar[bool] = False   # a check that runs on every run (preflight), never "already done"

    def inputs(self, ctx: Context) -> dict[str, Any]:
        """Everything the result depends on. A change re-runs the phase, naming the changed keys."""
        return {}

    def plan(self, ctx: Context) -> list[Action]:
        raise NotImplementedError

    def apply(self, ctx: Context, actions: list[Action]) -> dict[str, Any]:
        raise NotImplementedError


def digest(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fingerprint(inputs: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """(overall digest, digest per input key) — the per-key digests let a rerun say *what* changed
    without writing the inputs themselves (which may be large) into the journal."""
    per_key = {k: digest(v) for k, v in sorted(inputs.items())}
    return digest(per_key), per_key
