"""`ccp upgrade` from the command line's point of view: check the target, show the plan, ask, run."""

from __future__ import annotations

import sys

from ccp.upgrade import flow
from ccp.upgrade import plan as planning


def print_plan(steps, current: str, target: str, warnings: list[str]) -> None:
    from rich.table import Table

    from ccp import ui

    table = Table(title=f"upgrade {current} -> {target}", title_justify="left", show_edge=False, pad_edge=False)
    for col in ("#", "step", "nodes", "what"):
        table.add_column(col, justify="right" if col == "#" else "left")
    for i, s in enumerate(steps, 1):
        nodes = ", ".join(s.nodes[:4]) + (f" (+{len(s.nodes) - 4})" if len(s.nodes) > 4 else "")
        table.add_row(str(i), s.kind, nodes, ui.escape(s.detail))
    ui.out().print(table)
    for w in warnings:
        ui.out().print(f"[yellow]warning:[/] {ui.escape(w)}")


def execute(kubeconfig, cctx, journal, loaded, target: str, *, dry_run: bool, yes: bool) -> None:
    """``kubeconfig``: -> the cluster's kubeconfig, said out loud; a CcpError when it has none (the
    command line's own lookup, passed in: nothing below the command line imports it)."""
    import typer

    from ccp import ui
    from ccp.engine.runner import recall_outputs
    from ccp.errors import CcpError, ConfigError

    current = loaded.config.spec.kubernetes.version
    if flow.check_inputs(loaded, target) == "noop":
        ui.out().print(f"the cluster is at {target} already: nothing to do")
        return
    recall_outputs(cctx, journal.records())
    steps = planning.plan(loaded.config, current, target)
    done = {k for k, r in journal.records().items() if r.status == "done"}
    kube_path, warnings = None, []
    try:
        kube_path = kubeconfig()
        from ccp.remote.drain import tight_budgets
        from ccp.remote.kube_nodes import LightkubeNodes

        warnings = [f"may block a drain: {b}" for b in tight_budgets(LightkubeNodes(kube_path).pdbs())]
    except CcpError as exc:
        if not dry_run:
            raise
        warnings.append(f"PodDisruptionBudgets not checked: {exc.message}")
    print_plan(steps, current, target, warnings)
    if done & {s.key for s in steps}:
        ui.out().print(f"{len(done & {s.key for s in steps})} steps are done from an earlier run; they are skipped")
    if dry_run:
        ui.out().print("dry run: nothing was changed")
        return
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError("ccp upgrade needs confirmation", "review `ccp upgrade --dry-run`, then rerun with --yes")
        if not typer.confirm(f"Upgrade the cluster to {target}?"):
            ui.err().print("nothing changed")
            return
    from ccp.backup import snapshot as backup
    from ccp.remote.kube_nodes import LightkubeNodes
    from ccp.upgrade import run

    say = cctx.reporter.progress   # on the spinner, and in the run log

    handlers = {"preflight": lambda s: [ui.warn(w) for w in flow.preflight(cctx, kube_path, current, target, say)],
                "backup": lambda s: backup.backup(cctx, say=cctx.reporter.note),
                "addons": lambda s: flow.addons_and_validate(cctx, target, "addons"),
                "validate": lambda s: flow.addons_and_validate(cctx, target, "validate")}
    run.run(cctx, journal, steps, target, LightkubeNodes(kube_path), handlers=handlers, say=say)
    todo = flow.write_version(loaded.path, target)
    ui.out().print(f"[green]upgraded to {target}[/]" + (f"; now {todo}" if todo else f"; {loaded.path} says {target} now"))
