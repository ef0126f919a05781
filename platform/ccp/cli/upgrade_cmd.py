from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, cluster_run, kubeconfig_for, load_config, proceed


@app.command("upgrade")
def upgrade(ctx: typer.Context, config: Path = CONFIG_OPTION,
            to: str = typer.Option(..., "--to", metavar="VERSION", help="The Kubernetes version to move to (one minor at a time)."),
            bill_of_materials: Path = typer.Option(None, "--bill-of-materials", metavar="FILE",
                                                   help="The target's own bill of materials, for a cluster that runs on one "
                                                        "(kubernetes.billOfMaterials): its kubernetes: is the --to version. "
                                                        "Written into cluster.yaml when the upgrade finished."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Print the whole plan (order, batches, PDB warnings); change nothing."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
            resume: bool = typer.Option(False, "--resume", help="Continue a stopped upgrade at the node where it stopped.")) -> None:
    """Upgrade Kubernetes: preflight, backup, control planes one by one, workers in PDB-aware batches, add-ons, validation.

    Journaled node by node: a stopped upgrade resumes where it stopped. cluster.yaml's version is
    changed only when everything finished. An air-gapped cluster (spec.offline.bundle) takes the target's
    packages and images from its bundle, which must hold both versions (`ccp bundle create --with-bom`);
    they reach every node before the first one changes.

    Example (the lab): ccp upgrade --config cluster.yaml --to 1.35.0-lab.1 --bill-of-materials lab/bom-next.yaml"""
    from ccp import plan_view, ui, workflows
    from ccp.engine import runner
    from ccp.errors import CcpError
    from ccp.upgrade import flow, plan

    loaded = load_config(config)
    current = loaded.config.spec.kubernetes.version
    kind, bom = flow.check_inputs(loaded, to, bill_of_materials)
    if kind == "noop":
        ui.out().print(f"the cluster is at {to} already: nothing to do")
        return
    with cluster_run(ctx, loaded, "upgrade") as (cctx, journal):
        steps = plan.plan(loaded.config, current, to)
        try:
            kubeconfig_for(ctx, None, loaded)   # which cluster, said out loud; one without a kubeconfig is not upgraded
            warnings = flow.pdb_warnings(cctx)
        except CcpError as exc:
            if not dry_run:
                raise
            warnings = [f"PodDisruptionBudgets not checked: {exc.message}"]   # a dry run shows the plan all the same
        plan_view.print_upgrade_plan(steps, current, to, warnings)
        done = {k for k, r in journal.records().items() if r.status == "done"} & {s.key for s in steps}
        if done:
            ui.out().print(f"{len(done)} steps are done from an earlier run; they are skipped "
                           "(a node is upgraded again if its kubelet is not at the target)")
        if not proceed(dry_run=dry_run, yes=yes or resume, question=f"Upgrade the cluster to {to}?",
                       refused=("ccp upgrade needs confirmation", "review `ccp upgrade --dry-run`, then rerun with --yes")):
            return
        again = f" --bill-of-materials {bill_of_materials}" if bill_of_materials else ""
        runner.run(workflows.upgrade(to, steps, bom), cctx, journal, command="upgrade",
                   resume_hint=f"ccp upgrade --config {config} --to {to}{again} --resume")
    todo = flow.write_version(loaded.path, to, bom)
    # a finished upgrade's records served its resume only: the next upgrade to this version (of a cluster
    # made again, or a cluster.yaml put back) starts from its preflight
    journal.reset(plan.journal_keys(steps, to), f"the upgrade to {to} finished")
    ui.out().print(f"[green]upgraded to {to}[/]" + (f"; now {todo}" if todo else f"; {loaded.path} says {to} now"))
