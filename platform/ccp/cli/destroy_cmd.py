from __future__ import annotations

import sys
from pathlib import Path

import typer

from ccp.cli import app
from ccp.cli.common import CONFIG_OPTION, cluster_context, load_config


@app.command("destroy")
def destroy(
    ctx: typer.Context,
    config: Path = CONFIG_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove this cluster's VMs: only those carrying its ownership mark, never anyone else's.
    Shows what it will remove and asks first."""
    from ccp import ui, workflows
    from ccp.engine import runner
    from ccp.errors import ConfigError, PreflightError

    loaded = load_config(config)
    cctx, journal, log_file = cluster_context(ctx, loaded, "destroy")
    try:
        (planned,) = runner.plan(workflows.destroy(), cctx, journal)
        if planned.probe_error:
            raise PreflightError(f"cannot see what to destroy: {planned.probe_error}",
                                 "fix the connection (`ccp preflight` shows what is wrong) and run ccp destroy again")
        if not planned.actions:
            ui.out().print(f"nothing to destroy: no VM carries cluster {loaded.config.metadata.name}'s mark")
            return
        for a in planned.actions:
            ui.out().print(f"  [red]-[/] {ui.escape(a.describe())}")
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError("ccp destroy needs confirmation", "rerun with --yes")
            typer.confirm(f"Destroy these {len(planned.actions)} VMs?", abort=True)
        try:
            runner.run(workflows.destroy(), cctx, journal, command="destroy",
                       resume_hint=f"ccp destroy --config {config}")
        except Exception as exc:
            exc.log_file = log_file
            raise
    finally:
        cctx.close()
    gone = cctx.outputs.get("destroy/machines", {}).get("destroyed", [])
    ui.err().print(f"[green]destroyed {len(gone)} VMs[/] of cluster {loaded.config.metadata.name}")
