from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_run, load_config


@app.command("backup")
def backup(ctx: typer.Context, config: Path = CONFIG_OPTION,
           keep: Optional[int] = typer.Option(None, "--keep", min=1, metavar="N",
                                              help="Keep the newest N backups in <state>/backups (default: spec.backup.keep, 7).")) -> None:
    """Save an etcd snapshot (verified) and the PKI of the first control plane under <state>/backups/ (0600), keeping the newest N."""
    from ccp import ui
    from ccp.backup.snapshot import backup as take

    loaded = load_config(config)
    with cluster_run(ctx, loaded, "backup") as (cctx, _):
        where = take(cctx, say=lambda text: ui.err().print(f"  {ui.escape(text)}"), keep=keep)
    ui.out().print(f"backup saved in {where}")
