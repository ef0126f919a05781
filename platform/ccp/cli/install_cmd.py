from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, IGNORE_PREFLIGHT_OPTION, cluster_run, load_config, proceed, split_names


@app.command("install")
def install(
    ctx: typer.Context,
    config: Path = CONFIG_OPTION,
    resume: bool = typer.Option(False, "--resume", help="Continue a failed or interrupted install without asking."),
    until: str = typer.Option(None, "--until", help="Stop after this phase (or group), e.g. provision.", metavar="PHASE"),
    skip_phases: str = typer.Option("", "--skip-phases", help="Comma-separated phases (or groups) not to run.", metavar="A,B"),
    ignore_preflight: list[str] = IGNORE_PREFLIGHT_OPTION,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    merge_kubeconfig: bool = typer.Option(False, "--merge-kubeconfig",
                                          help="Also merge the cluster's kubeconfig into ~/.kube/config (context named after the cluster)."),
) -> None:
    """Build the cluster, phase by phase. Safe to rerun: finished phases are skipped, an interrupted
    one continues. `ccp phases` shows where a run stands."""
    from ccp import plan_view, workflows
    from ccp.engine import runner
    from ccp.errors import ConfigError

    loaded = load_config(config)
    with cluster_run(ctx, loaded, "install") as (cctx, journal):
        cctx.ignore_preflight = split_names(ignore_preflight)
        cctx.merge_kubeconfig = merge_kubeconfig
        skip = sorted(split_names(skip_phases))
        last = journal.last_run()
        if resume and last is None:
            raise ConfigError(f"there is no earlier install to resume in {cctx.state_dir}",
                              f"run `ccp install --config {config}` (without --resume)")
        if last and last.get("event") == "run-started":
            cctx.reporter.console.print(f"[yellow]the previous run ({last['run']}) did not finish; continuing it[/]")
        flow = workflows.install()
        planned = runner.plan(flow, cctx, journal, until=until, skip=skip)
        changes = [p for p in planned if (p.changes or p.probe_error) and p.phase.layer != "prepare" and not p.phase.always]
        if changes and not (yes or resume):
            plan_view.print_plan(planned, plan_view.inventory_rows(cctx.nodes), cctx.state_dir)
            if not proceed(yes=False, question="Apply this plan?", declined="nothing changed: the plan was not applied",
                           refused=("ccp install changes infrastructure and needs confirmation",
                                    "review `ccp plan`, then rerun with --yes")):
                return
        runner.run(flow, cctx, journal, command="install", until=until, skip=skip,
                   resume_hint=f"ccp install --config {config} --resume")
    plan_view.print_machines(cctx.outputs.get("provision", {}).get("nodes"))
    cctx.reporter.console.print(f"[green]install finished[/] — state and logs in {cctx.state_dir}")


# `ccp apply` is the same command under the name a day-2 operator reaches for: after editing
# cluster.yaml (more or fewer nodes, a changed add-on), it moves the cluster to what the file says.
app.command("apply", help="The same as install, for day 2: move the cluster to what cluster.yaml says now "
                          "(scale workers or control planes, change add-ons); `ccp plan` shows the difference first.")(install)
