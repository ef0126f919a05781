from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, cluster_run, load_config, print_json


@app.command("plan")
def plan(ctx: typer.Context, config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION,
         detailed_exitcode: bool = typer.Option(
             False, "--detailed-exitcode",
             help="Exit 0 when nothing would change, 2 when the install would change something, 1 on any error "
                  "(Terraform's convention, for scripts). Without it: 0, or the error's own code.")) -> None:
    """Show every action `ccp install` would take, in order and grouped by layer, without changing anything.

    Read-only steps (preflight checks, waits, the validation checks) are listed but not counted as changes.
    A phase that cannot be probed (vCenter or the nodes unreachable from here) makes the plan incomplete:
    that is an error (exit code of its family), since the install would stop there."""
    from ccp import workflows
    from ccp.engine import runner
    from ccp.errors import CcpError
    from ccp.plan_view import inventory_rows, plan_data, print_plan

    try:
        loaded = load_config(config, quiet=output is Output.json)
        with cluster_run(ctx, loaded, "plan", with_log=False) as (cctx, journal):   # the probes may open SSH and vSphere sessions
            planned = runner.plan(workflows.install(), cctx, journal)
        nodes = cctx.nodes
        if output is Output.json:
            print_json(plan_data(planned, nodes))
        else:
            print_plan(planned, inventory_rows(nodes), cctx.state_dir)
        blocked = [p for p in planned if p.probe_error]
        if blocked:
            raise typer.Exit(1 if detailed_exitcode else blocked[0].probe_code or 1)
        if detailed_exitcode and any(p.changes for p in planned):
            raise typer.Exit(2)
    except CcpError as exc:
        if detailed_exitcode:
            exc.code = 1
        raise
