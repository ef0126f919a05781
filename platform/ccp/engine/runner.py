"""Run a workflow: for each phase, fingerprint its inputs, probe (plan), act (apply), journal.

A phase that completed with the same inputs and whose probe finds nothing to do is "already
done". Otherwise the reason for running is said: first run, inputs changed (naming them), the
previous run stopped here, or the probe found work. Failures keep all evidence and tell the
user how to continue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ccp import redact
from ccp.engine.journal import Journal, PhaseRecord
from ccp.engine.phase import Action, Context, Phase, fingerprint
from ccp.errors import CcpError, ConfigError, InternalError, Interrupted


@dataclass
class PhaseResult:
    name: str
    layer: str
    status: str          # done | already done | skipped | failed | interrupted
    reason: str = ""
    duration: float = 0.0
    actions: list[Action] = field(default_factory=list)


@dataclass
class PlannedPhase:
    phase: Phase
    actions: list[Action]
    reason: str
    up_to_date: bool
    probe_error: str = ""     # the probe could not run (e.g. vCenter unreachable from here)
    probe_code: int = 0       # that error's exit code
    probe_exc: CcpError | None = None

    @property
    def changes(self) -> int:
        return sum(a.count for a in self.actions if a.changes)


def select(workflow: list[Phase], until: str | None = None, skip: list[str] | tuple = ()) -> tuple[list[Phase], set[str]]:
    """The phases to consider (through ``until``) and the names the user asked to skip.

    A group name ("kubeadm") matches every phase under it ("kubeadm/init", ...).
    """
    names = [p.name for p in workflow]

    def matches(pattern: str) -> list[str]:
        return [n for n in names if n == pattern or n.startswith(pattern.rstrip("/") + "/")]

    for pattern in ([until] if until else []) + list(skip):
        if not matches(pattern):
            raise ConfigError(f"there is no phase {pattern!r}",
                              f"use one of: {', '.join(names)} (or a group such as {names[0].split('/')[0]!r}); `ccp phases` shows the tree")
    selected = list(workflow)
    if until:
        last = max(names.index(n) for n in matches(until))
        selected = workflow[: last + 1]
    skipped = {n for pattern in skip for n in matches(pattern)}
    return selected, skipped


def recall_outputs(ctx: Context, records: dict[str, PhaseRecord]) -> None:
    """What earlier runs recorded (machine addresses, say) is what later phases build on: the last outputs a
    phase recorded, kept through later attempts that failed (Journal.records carries them)."""
    for r in records.values():
        if r.outputs and r.status != "skipped":
            ctx.outputs.setdefault(r.phase, r.outputs)


def _reason(rec: PhaseRecord | None, fp: str, per_key: dict[str, str], actions: list[Action],
            always: bool = False) -> tuple[str, bool]:
    """(why the phase runs, or "already done"; whether it is up to date)."""
    if always and actions:
        return "runs on every run", False
    if rec is None:
        return "first run", False
    if rec.status == "started":
        return "resuming: the previous run was interrupted in this phase", False
    if rec.status == "failed" and rec.error == "interrupted":
        return "resuming: the previous run was interrupted in this phase", False
    if rec.status == "failed":
        return f"retrying: the previous run failed here ({rec.error})", False
    if rec.status == "skipped":
        return "not done before (was skipped)", False
    if rec.fingerprint != fp:
        old = rec.inputs or {}
        changed = sorted(k for k in set(old) | set(per_key) if old.get(k) != per_key.get(k))
        return f"inputs changed: {', '.join(changed) or 'unknown'}", False
    if actions:
        return f"the probe found {sum(a.count for a in actions)} thing(s) to do", False
    return "already done", True


def plan(workflow: list[Phase], ctx: Context, journal: Journal, *, until=None, skip=()) -> list[PlannedPhase]:
    """Probe every selected phase and say what it would do. Changes nothing."""
    selected, skipped = select(workflow, until, skip)
    records = journal.records()
    recall_outputs(ctx, records)
    out = []
    for phase in selected:
        if phase.name in skipped:
            continue
        fp, per_key = fingerprint(phase.inputs(ctx))
        try:
            actions = phase.plan(ctx)
        except CcpError as exc:  # a plan still shows the rest; the install itself would stop here
            out.append(PlannedPhase(phase, [], f"cannot probe: {exc.message}", False, exc.message, exc.code, exc))
            continue
        reason, up_to_date = _reason(records.get(phase.name), fp, per_key, actions, phase.always)
        out.append(PlannedPhase(phase, actions, reason, up_to_date))
    return out


def run(workflow: list[Phase], ctx: Context, journal: Journal, *, command: str,
        until=None, skip=(), resume_hint: str = "") -> list[PhaseResult]:
    selected, skipped = select(workflow, until, skip)
    reporter = ctx.reporter
    journal.lock(command)
    ctx.journal = journal   # where a phase records its parts (Context.record_part)
    results: list[PhaseResult] = []
    journal.append("run-started", command=command, until=until, skip=sorted(skipped))
    try:
        records = journal.records()
        recall_outputs(ctx, records)
        for phase in selected:
            if phase.name in skipped:
                journal.append("skipped", phase=phase.name, reason="--skip-phases")
                results.append(PhaseResult(phase.name, phase.layer, "skipped", "--skip-phases"))
                reporter.phase_skipped(phase, "skipped (--skip-phases)")
                continue
            results.append(_run_phase(phase, ctx, journal, records.get(phase.name), resume_hint, results))
        journal.append("run-finished", status="ok")
        return results
    except KeyboardInterrupt:
        journal.append("run-finished", status="interrupted")
        where = f" in phase {results[-1].name}" if results and results[-1].status == "interrupted" else ""
        raise Interrupted(f"interrupted{where}: nothing was rolled back",
                          f"continue with `{resume_hint}`" if resume_hint else "rerun the same command to continue") from None
    except BaseException:
        journal.append("run-finished", status="failed")
        raise
    finally:
        journal.unlock()
        reporter.finished(results)


def _run_phase(phase: Phase, ctx: Context, journal: Journal, rec: PhaseRecord | None, resume_hint: str,
               results: list[PhaseResult]) -> PhaseResult:
    """Probe, then act. A failure or Ctrl-C in either step is journaled, shown and put in ``results``
    (so `ccp phases` and the timing table name the phase) before it propagates."""
    reporter = ctx.reporter
    t0 = time.monotonic()
    fp, per_key = "", {}
    started = False
    try:
        fp, per_key = fingerprint(phase.inputs(ctx))
        actions = phase.plan(ctx)
        reason, up_to_date = _reason(rec, fp, per_key, actions, phase.always)
        if up_to_date:
            reporter.phase_skipped(phase, "already done")
            return PhaseResult(phase.name, phase.layer, "already done", reason, time.monotonic() - t0)
        reporter.phase_started(phase, reason, actions)
        journal.append("started", phase=phase.name, fingerprint=fp, inputs=per_key, reason=reason)
        started = True
        outputs = phase.apply(ctx, actions) or {}
    except KeyboardInterrupt:
        duration = time.monotonic() - t0
        journal.append("failed", phase=phase.name, fingerprint=fp, inputs=per_key, error="interrupted",
                       duration=round(duration, 3))
        reporter.phase_failed(phase, "interrupted", duration)
        results.append(PhaseResult(phase.name, phase.layer, "interrupted", "Ctrl-C", duration))
        raise
    except Exception as exc:
        step = "" if started else " to probe"
        err = exc if isinstance(exc, CcpError) else InternalError(
            f"phase {phase.name} failed{step}: {exc}", "this is a ccp bug; rerun with --debug and report the traceback")
        duration = time.monotonic() - t0
        journal.append("failed", phase=phase.name, fingerprint=fp, inputs=per_key,
                       error=redact.scrub(err.message), duration=round(duration, 3))
        reporter.phase_failed(phase, err.message, duration)
        results.append(PhaseResult(phase.name, phase.layer, "failed", err.message, duration))
        if resume_hint and resume_hint not in err.resolution:
            err.resolution = (err.resolution + "; then " if err.resolution else "") + f"continue with `{resume_hint}`"
        if err is exc:
            raise
        raise err from exc
    duration = time.monotonic() - t0
    ctx.outputs[phase.name] = outputs
    journal.append("done", phase=phase.name, fingerprint=fp, inputs=per_key, outputs=outputs,
                   duration=round(duration, 3))
    reporter.phase_done(phase, duration, actions)
    return PhaseResult(phase.name, phase.layer, "done", reason, duration, actions)
