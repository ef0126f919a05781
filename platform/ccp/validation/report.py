"""The result table people read."""

from __future__ import annotations


def print_table(results, notes) -> None:
    from rich.table import Table

    from ccp import ui

    colors = {"pass": "green", "fail": "red", "skipped": "yellow"}
    table = Table(title="validation", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("check", "result", "time", "detail"):
        table.add_column(col, justify="right" if col == "time" else "left")
    for r in results:
        table.add_row(r.check, f"[{colors[r.status]}]{r.status}[/]", ui.fmt_seconds(r.seconds), ui.escape(r.detail))
    ui.out().print(table)
    for note in notes:
        ui.err().print(f"[dim]{ui.escape(note)}[/]")
