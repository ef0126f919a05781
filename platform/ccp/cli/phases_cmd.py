import datetime
from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, cluster_context, load_config, print_json


@app.command("phases")
def phases(ctx: typer.Context, config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Show the install's phase tree and where each phase stands in the journal."""
    from ccp import workflows

    loaded = load_config(config, quiet=output is Output.json, defer_secrets=True)
    cctx, journal, _ = cluster_context(ctx, loaded, "phases", with_log=False)
    records = journal.records()
    rows = []
    for group, members in workflows.tree(workflows.install()).items():
        for p in members:
            r = records.get(p.name)
            status = ("pending" if r is None else "interrupted" if r.interrupted or r.error == "interrupted" else r.status)
            when = datetime.datetime.fromtimestamp(r.ts).strftime("%Y-%m-%d %H:%M:%S") if r else ""
            rows.append({"group": group, "phase": p.name, "layer": p.layer, "summary": p.summary, "status": status,
                         "when": when, "duration": r.duration if r else None, "error": r.error if r else ""})
    if output is Output.json:
        print_json({"stateDir": str(cctx.state_dir), "phases": rows})
        return
    from rich.tree import Tree

    from ccp import ui

    colors = {"done": "green", "failed": "red", "interrupted": "yellow", "skipped": "dim", "pending": "dim"}
    tree = Tree(f"install  [dim]({cctx.state_dir})[/]")
    branches: dict[str, Tree] = {}
    for row in rows:
        parent = tree
        if row["phase"] != row["group"]:
            if row["group"] not in branches:
                branches[row["group"]] = tree.add(row["group"])
            parent = branches[row["group"]]
        extra = f"  {row['when']}" if row["when"] else ""
        extra += f"  [red]{ui.escape(row['error'])}[/]" if row["error"] else ""
        parent.add(f"{row['phase']}  [{colors[row['status']]}]{row['status']}[/]{extra}  [dim]{ui.escape(row['summary'])}[/]")
    ui.out().print(tree)
