from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_run, load_config, proceed


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

    loaded = load_config(config, defer_secrets=True)
    with cluster_run(ctx, loaded, "destroy") as (cctx, journal):
        (planned,) = runner.plan(workflows.destroy(), cctx, journal)
        if planned.probe_exc is not None:   # cannot see what to destroy: say why, exactly as the probe did
            raise planned.probe_exc
        if not planned.actions:
            if loaded.config.spec.provisioner == "static":
                ui.out().print("nothing to destroy: provisioner static does not create or remove machines")
                return
            what = "local machine belongs to" if loaded.config.spec.provisioner == "local" else "VM carries"
            ui.out().print(f"nothing to destroy: no {what} cluster {loaded.config.metadata.name}")
            journal.reset(workflows.on_machines(journal.records()), "no VM of the cluster exists")
            return
        for a in planned.actions:
            ui.out().print(f"  [red]-[/] {ui.escape(a.describe())}")
        if not proceed(yes=yes, question=f"Destroy these {len(planned.actions)} machines?",
                       refused=("ccp destroy needs confirmation", "rerun with --yes"),
                       declined="nothing changed: no machine was destroyed"):
            return
        runner.run(workflows.destroy(), cctx, journal, command="destroy", resume_hint=f"ccp destroy --config {config}")
    journal.reset(workflows.on_machines(journal.records()), "ccp destroy removed the machines")
    gone = cctx.outputs.get("destroy/machines", {}).get("destroyed", [])
    ui.err().print(f"[green]destroyed {len(gone)} machines[/] of cluster {loaded.config.metadata.name}")
