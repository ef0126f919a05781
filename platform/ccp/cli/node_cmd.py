from pathlib import Path

import typer

from ccp.cli.apps import node_app
from ccp.cli.common import CONFIG_OPTION, cluster_run, load_config, show_and_confirm


@node_app.command("replace")
def replace(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", help="The node, e.g. prod-default-3."),
            config: Path = CONFIG_OPTION,
            until: str = typer.Option(None, "--until", metavar="PHASE",
                                      help="Stop the install workflow that follows after this phase (default: run it all, validation included)."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
    """Replace a broken node: drain it, take it out of the cluster (etcd member first), make its VM new, join it again."""
    from ccp import ui, workflows
    from ccp.engine import runner

    loaded = load_config(config)
    with cluster_run(ctx, loaded, "node-replace") as (cctx, journal):
        planned = runner.plan(workflows.replace(name), cctx, journal)
        ui.err().print(f"then the install workflow creates, prepares and joins {name} (and changes nothing else)")
        if not show_and_confirm(planned, cctx, yes=yes, question=f"Replace {name}?", what=f"replacing {name}"):
            return
        # Two runs, each with its own way to continue: once the machine is new, replacing it again would
        # destroy the new one, so a failure from there on is continued by the install.
        runner.run(workflows.replace(name), cctx, journal, command="node-replace",
                   resume_hint=f"ccp node replace {name} --config {config} --yes")
        runner.run(workflows.install(), cctx, journal, command="install", until=until,
                   resume_hint=f"ccp install --config {config} --resume")
    ui.err().print(f"[green]{name} replaced[/] — state and logs in {cctx.state_dir}")
