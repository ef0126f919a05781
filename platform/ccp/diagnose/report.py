"""The findings table people read, and the exit rule."""

from __future__ import annotations

from ccp.errors import DiagnoseFailed

COLORS = {"ok": "green", "warn": "yellow", "fail": "red"}


def print_table(findings, title: str = "diagnose") -> None:
    from rich.table import Table

    from ccp import ui

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for col in ("result", "section", "check", "finding"):
        table.add_column(col)
    for f in findings:
        text = ui.escape(f.what)
        text += "".join(f"\n[dim]{ui.escape(e)}[/]" for e in f.evidence)
        if f.remediation and f.severity != "ok":
            text += f"\n[dim]-> {ui.escape(f.remediation)}[/]"
        table.add_row(f"[{COLORS[f.severity]}]{f.severity}[/]", f.section, f.check, text)
    ui.out().print(table)


def raise_if_failed(findings) -> None:
    failed = [f for f in findings if f.severity == "fail"]
    if failed:
        raise DiagnoseFailed(f"{len(failed)} finding{'s' if len(failed) != 1 else ''} failed: "
                             + ", ".join(sorted({f'{f.section}/{f.check}' for f in failed})),
                             "each finding above says what to do; attach the --bundle to a support ticket")


def print_certs(certs) -> None:
    from rich.table import Table

    from ccp import ui

    table = Table(title="certificates", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("result", "days left", "expires", "certificate", "subject"):
        table.add_column(col, justify="right" if col == "days left" else "left")
    for c in certs:
        table.add_row(f"[{COLORS[c.severity]}]{c.severity}[/]", f"{c.days:.0f}", f"{c.not_after:%Y-%m-%d}",
                      ui.escape(c.where), ui.escape(c.subject))
    ui.out().print(table)
