from __future__ import annotations

from pathlib import Path

import typer

from ccp.cli import app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, cluster_context, load_config, print_json


@app.command("plan")
def plan(ctx: typer.Context, config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Show every action `ccp install` would take, in order and grouped by layer, without changing anything."""
    from ccp import workflows
    from ccp.config import inventory
    from ccp.engine import runner
    from ccp.plan_view import inventory_rows, plan_data, print_plan

    loaded = load_config(config, quiet=output is Output.json)
    cctx, journal, _ = cluster_context(ctx, loaded, "plan", with_log=False)
    try:
        planned = runner.plan(workflows.install(), cctx, journal)
    finally:
        cctx.close()   # the probes may have opened SSH and vSphere sessions
    nodes = inventory.build(loaded.config)
    if output is Output.json:
        print_json(plan_data(planned, nodes))
    else:
        print_plan(planned, inventory_rows(nodes), cctx.state_dir)
