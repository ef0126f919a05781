from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_context, kubeconfig_for, load_config


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
    cctx, journal, log_file = cluster_context(ctx, loaded, "upgrade")
    try:
        command.execute(lambda: kubeconfig_for(ctx, None, loaded), cctx, journal, loaded, to, dry_run=dry_run, yes=yes or resume)
    except Exception as exc:
        exc.log_file = log_file
        raise
    finally:
        cctx.close()


@app.command("backup")
def backup(ctx: typer.Context, config: Path = CONFIG_OPTION,
           keep: Optional[int] = typer.Option(None, "--keep", min=1, metavar="N",
                                              help="Keep the newest N backups in <state>/backups (default: spec.backup.keep, 7).")) -> None:
    """Save an etcd snapshot (verified) and the PKI of the first control plane under <state>/backups/ (0600), keeping the newest N."""
    from ccp import ui
    from ccp.engine.runner import recall_outputs
    from ccp.backup.snapshot import backup as take

    loaded = load_config(config)
    cctx, journal, _ = cluster_context(ctx, loaded, "backup")
    recall_outputs(cctx, journal.records())
    try:
        where = take(cctx, say=lambda text: ui.err().print(f"  {ui.escape(text)}"), keep=keep)
    finally:
        cctx.close()
    ui.out().print(f"backup saved in {where}")
