from __future__ import annotations

from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_run, kubeconfig_for, load_config


@app.command("upgrade")
def upgrade(ctx: typer.Context, config: Path = CONFIG_OPTION,
            to: str = typer.Option(..., "--to", metavar="VERSION", help="The Kubernetes version to move to (one minor at a time)."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Print the whole plan (order, batches, PDB warnings); change nothing."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
            resume: bool = typer.Option(False, "--resume", help="Continue a stopped upgrade at the node where it stopped.")) -> None:
    """Upgrade Kubernetes: preflight, backup, control planes one by one, workers in PDB-aware batches, add-ons, validation.

    Journaled node by node: a stopped upgrade resumes where it stopped. cluster.yaml's version is
    changed only when everything finished."""
    from ccp.upgrade import command

    loaded = load_config(config)
    with cluster_run(ctx, loaded, "upgrade") as (cctx, journal):
        command.execute(lambda: kubeconfig_for(ctx, None, loaded), cctx, journal, loaded, to, dry_run=dry_run, yes=yes or resume)
