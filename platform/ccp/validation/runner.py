"""Run the checks in order, each pass / fail / skipped with its time, and always clean up — on
success, failure, timeout and Ctrl-C — removing only what this run created. A namespace left by an
earlier run that crashed is found by its label and removed first."""

from __future__ import annotations

import secrets
import time

from ccp.errors import CcpError, ValidationFailed
from ccp.validation.base import VALIDATE_LABEL, CheckFailed, Ctx, Options, Result, Skip, ValidationPort
from ccp.validation.checks import CHECKS
from ccp.validation.report import summary


def run(port: ValidationPort, opts: Options, *, only: list[str] | None = None, clock=time.monotonic, sleep=time.sleep,
        say=lambda text: None) -> tuple[list[Result], list[str]]:
    """-> (results, housekeeping notes)."""
    check_names(only)
    notes = []
    for leftover in port.namespaces({VALIDATE_LABEL: "true"}):
        port.delete_namespace(leftover)
        notes.append(f"removed namespace {leftover} left by an earlier run")
    token = secrets.token_hex(8)
    ctx = Ctx(port, opts, f"ccp-validate-{token[:6]}", token, clock=clock, sleep=sleep)
    results: list[Result] = []
    try:
        port.create_namespace(ctx.namespace, {VALIDATE_LABEL: "true"})
        for name, check in CHECKS.items():
            if only and name not in only:
                continue
            say(f"{name}: running")
            t0 = clock()
            try:
                detail, measured = check(ctx)
                results.append(Result(name, "pass", clock() - t0, detail, measured))
            except Skip as exc:
                results.append(Result(name, "skipped", clock() - t0, str(exc)))
            except CheckFailed as exc:
                results.append(Result(name, "fail", clock() - t0, str(exc)))
            except CcpError as exc:   # the API refused something: the check could not prove anything
                results.append(Result(name, "fail", clock() - t0, exc.message))
            except Exception as exc:  # e.g. the API went away mid-check: this check fails, the others still run
                results.append(Result(name, "fail", clock() - t0, f"{type(exc).__name__}: {exc}"))
            last = results[-1]
            say(f"{name}: {last.status}" + (f" ({last.detail})" if last.status == "skipped" else ""))
    finally:
        for kind, ns, name in ctx.created:
            port.remove(kind, ns, name)
        port.delete_namespace(ctx.namespace)
        notes.append(f"removed namespace {ctx.namespace}" + (f" and {len(ctx.created)} object(s) elsewhere" if ctx.created else ""))
    return results, notes


def check_names(only: list[str] | None) -> None:
    unknown = sorted(set(only or []) - set(CHECKS))
    if unknown:
        from ccp.errors import ConfigError

        raise ConfigError(f"no check named {', '.join(unknown)}", f"choose from: {', '.join(CHECKS)}")


def raise_if_failed(results: list[Result]) -> None:
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise ValidationFailed(f"{len(failed)} of {len(results)} checks failed ({summary(results)}): "
                               f"{', '.join(r.check for r in failed)}",
                               "the detail of each failed check says what did not work; fix it and run ccp validate again",
                               [f"{r.check}: {r.detail}" for r in failed])
