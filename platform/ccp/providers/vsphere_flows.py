"""Run many per-VM flows at once with bounded parallelism, from one thread.

A flow is a generator that yields vSphere tasks one at a time and receives each task's result
(or has the failure thrown into it). Up to ``limit`` flows are in flight; all their tasks are
waited on together through one TaskWaiter. One VM failing does not stop the others; the failures
are collected and reported together, and nothing is rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from ccp.providers.vsphere_session import Session, TaskFailed, TaskWaiter, fault_text

Flow = Generator[Any, Any, Any]


@dataclass
class FlowResults:
    done: dict[str, Any] = field(default_factory=dict)       # name -> the flow's return value
    failed: dict[str, str] = field(default_factory=dict)     # name -> what went wrong
    seconds: dict[str, float] = field(default_factory=dict)


def run_flows(session: Session, flows: Iterable[tuple[str, Flow]], limit: int,
              on_event: Callable[[str, str], None] = lambda name, text: None,
              task_timeout: int = 1800) -> FlowResults:
    results = FlowResults()
    waiter = TaskWaiter(session)
    active: dict[Any, tuple[str, Flow]] = {}
    started: dict[str, float] = {}
    pending = iter(flows)
    in_flight = 0

    def advance(name: str, flow: Flow, value: Any = None, error: BaseException | None = None) -> None:
        nonlocal in_flight
        try:
            task = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            in_flight -= 1
            results.done[name] = stop.value
            results.seconds[name] = time.monotonic() - started[name]
            on_event(name, "done")
            return
        except Exception as exc:  # the flow gave up: record, keep the others going
            in_flight -= 1
            results.failed[name] = getattr(exc, "message", None) or str(exc)
            results.seconds[name] = time.monotonic() - started[name]
            on_event(name, f"failed: {results.failed[name]}")
            return
        active[task] = (name, flow)
        waiter.add(task)

    def fill() -> None:
        nonlocal in_flight
        while in_flight < limit:
            try:
                name, flow = next(pending)
            except StopIteration:
                return
            in_flight += 1
            started[name] = time.monotonic()
            advance(name, flow)

    try:
        fill()
        deadline = time.monotonic() + task_timeout
        while active:
            finished = waiter.wait(timeout=session.poll_seconds)
            if not finished and time.monotonic() > deadline:
                for name, flow in active.values():
                    results.failed[name] = f"a vSphere task did not finish within {task_timeout}s"
                    flow.close()
                break
            for task, result, error in finished:
                name, flow = active.pop(task)
                if error is not None:
                    advance(name, flow, error=TaskFailed(fault_text(error)))
                else:
                    advance(name, flow, value=result)
            fill()
    finally:
        waiter.close()
    return results
