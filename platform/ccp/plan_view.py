"""How `ccp plan` and `ccp install` show a plan: the nodes, then actions grouped by layer; and how
`ccp upgrade` shows its steps."""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

from ccp.engine.phase import LAYERS


def inventory_rows(nodes) -> list[tuple]:
    """One row per pool: a 500-worker pool is one line."""
    rows = []
    for (role, pool), group in groupby(nodes, key=lambda n: (n.role, n.pool)):
        g = list(group)
        first = g[0]
        rows.append((role, pool, len(g), f"{first.cpus} vCPU, {first.memoryMiB} MiB, {first.diskGiB} GiB",
                     address_runs([n.address for n in g])))
    return rows


def address_runs(addresses) -> str:
    """"10.0.0.13 – 10.0.0.15, 10.0.0.20": the pool's addresses in node order, consecutive ones as one run (a pool
    grown after another role kept its addresses, or with a node removed from its middle, is not one block)."""
    runs: list[list] = []
    for a in addresses:
        if runs and int(a) == int(runs[-1][-1]) + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    shown = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]} – {r[-1]}" for r in runs[:4])
    return shown + (f" (+{sum(map(len, runs[4:]))} more)" if len(runs) > 4 else "")


def plan_data(planned, nodes) -> dict:
    return {
        "nodes": [{"name": n.name, "role": n.role, "pool": n.pool, "address": str(n.address), "cpus": n.cpus,
                   "memoryMiB": n.memoryMiB, "diskGiB": n.diskGiB} for n in nodes],
        "phases": [{"phase": p.phase.name, "layer": p.phase.layer, "upToDate": p.up_to_date, "reason": p.reason,
                    "probeError": p.probe_error or None,
                    "actions": [{"verb": a.verb, "target": a.target, "reason": a.reason, "count": a.count,
                                 "changes": a.changes} for a in p.actions]} for p in planned],
        "summary": {layer: sum(p.changes for p in planned if p.phase.layer == layer) for layer in LAYERS},
        "changes": sum(p.changes for p in planned),
        "probeErrors": sum(1 for p in planned if p.probe_error),
    }


def print_plan(planned, rows, state_dir: Path) -> None:
    from rich.table import Table

    from ccp import ui

    console = ui.out()
    table = Table(title="nodes", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("role", "pool", "count", "size", "addresses"):
        table.add_column(col, justify="right" if col == "count" else "left")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    console.print(table)
    console.print()
    total = 0
    for layer in LAYERS:
        phases = [p for p in planned if p.phase.layer == layer]
        if not phases:
            continue
        n = sum(p.changes for p in phases)
        total += n
        console.print(f"[bold]{layer}[/] ({n} change{'s' if n != 1 else ''})")
        for p in phases:
            if p.probe_error:
                console.print(f"  [red]![/] {p.phase.name}: {ui.escape(p.reason)} [dim](the install would stop here)[/]")
                continue
            if p.up_to_date or not p.actions:
                console.print(f"  [dim]• {p.phase.name}: up to date[/]")
                continue
            mark = "[cyan]→[/]" if p.changes else "[dim]?[/]"
            console.print(f"  {mark} {p.phase.name}: {ui.escape(p.phase.summary)} [dim]({ui.escape(p.reason)})[/]")
            for a in p.actions:
                console.print(f"      {ui.escape(a.describe())}" + ("" if a.changes else "  [dim](read-only)[/]"))
    console.print()
    blocked = [p.phase.name for p in planned if p.probe_error]
    summary = f"plan: {total} change{'s' if total != 1 else ''} across {len(planned)} phases" if total else "plan: nothing to change"
    console.print(f"{summary}; state: {state_dir}")
    if blocked:
        console.print(f"[red]plan incomplete:[/] {len(blocked)} phase(s) could not be probed ({', '.join(blocked)}); "
                      "the install would stop at the first of them")


def print_machines(nodes: dict | None) -> None:
    """The machines the provision phase recorded: name, role, address, and what the provider knows of
    each (vSphere: the reported address and moid; local machines: the veth and the host PID of its init)."""
    if not nodes:
        return
    from rich.table import Table

    from ccp import ui

    local = any("veth" in n for n in nodes.values())
    extra = ("veth", "pid") if local else ("reported", "moid")
    table = Table(title="machines", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("name", "role", "address", *extra):
        table.add_column(col)
    for name, n in nodes.items():
        table.add_row(name, n.get("role", ""), n.get("address", ""), *(str(n.get(k) or "") for k in extra))
    ui.out().print(table)


def print_upgrade_plan(steps, current: str, target: str, warnings: list[str]) -> None:
    """`ccp upgrade`'s plan: one row per step (ccp.upgrade.plan.Step), then what may get in its way."""
    from rich.table import Table

    from ccp import ui

    table = Table(title=f"upgrade {current} -> {target}", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("#", "step", "nodes", "what"):
        table.add_column(col, justify="right" if col == "#" else "left")
    for i, s in enumerate(steps, 1):
        nodes = ", ".join(s.nodes[:4]) + (f" (+{len(s.nodes) - 4})" if len(s.nodes) > 4 else "")
        table.add_row(str(i), s.kind, nodes, ui.escape(s.detail))
    ui.out().print(table)
    for w in warnings:
        ui.out().print(f"[yellow]warning:[/] {ui.escape(w)}")
