"""The result table people read, and the one-line summary under it. A skipped check is never counted
as passed: it shows SKIP with its reason and is counted on its own."""

from __future__ import annotations

LABELS = {"pass": ("PASS", "green"), "fail": ("FAIL", "red"), "skipped": ("SKIP", "yellow")}


def counts(results) -> dict[str, int]:
    return {"passed": sum(r.status == "pass" for r in results), "failed": sum(r.status == "fail" for r in results),
            "skipped": sum(r.status == "skipped" for r in results)}


def summary(results) -> str:
    """E.g. "4 passed, 1 skipped" or "3 passed, 1 failed, 1 skipped" (zero failures and skips are left out)."""
    n = counts(results)
    return ", ".join([f"{n['passed']} passed"] + [f"{n[k]} {k}" for k in ("failed", "skipped") if n[k]])


def print_table(results, notes) -> None:
    from rich.table import Table

    from ccp import ui

    table = Table(title="validation", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("check", "result", "time", "detail"):
        table.add_column(col, justify="right" if col == "time" else "left")
    for r in results:
        label, color = LABELS[r.status]
        table.add_row(r.check, f"[{color}]{label}[/]", ui.fmt_seconds(r.seconds), ui.escape(r.detail))
    ui.out().print(table)
    failed = any(r.status == "fail" for r in results)
    ui.out().print(f"[{'red' if failed else 'green'}]{ui.escape(summary(results))}[/]")
    for note in notes:
        ui.err().print(f"[dim]{ui.escape(note)}[/]")
