from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_run, load_config, show_and_confirm


@app.command("restore")
def restore(ctx: typer.Context, config: Path = CONFIG_OPTION,
            source: Path = typer.Option(..., "--from", metavar="BACKUP",
                                        help="A backup directory under <state>/backups/, or a scheduled snapshot .db with its .sha256."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Restore etcd on every control plane from a snapshot: every change made since it was taken is lost."""
    from ccp import ui, workflows
    from ccp.backup import restore as r
    from ccp.engine import runner

    snap = r.find(source)
    r.verify(snap)   # before anything is asked or touched
    loaded = load_config(config)
    with cluster_run(ctx, loaded, "restore") as (cctx, journal):
        planned = runner.plan(workflows.restore(snap), cctx, journal)
        if not show_and_confirm(planned, cctx, yes=yes, what="ccp restore replaces the cluster's whole state and",
                                question=f"Restore etcd from {source}? Every change made since it was taken is lost"):
            return
        runner.run(workflows.restore(snap), cctx, journal, command="restore",
                   resume_hint=f"ccp restore --config {config} --from {source} --yes")
    ui.err().print(f"[green]restored[/] etcd from {source}; the data from before is kept on each control plane in "
                   f"{r.old_data_dir(snap.rid)} (delete it once the cluster is as you want)")
