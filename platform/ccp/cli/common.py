"""Options and helpers the command files share."""

from __future__ import annotations

import contextlib
import enum
from pathlib import Path

import typer


class Output(str, enum.Enum):
    text = "text"
    json = "json"


CONFIG_OPTION = typer.Option(..., "--config", "-c", help="The cluster.yaml to use.", show_default=False)
OPTIONAL_CONFIG_OPTION = typer.Option(None, "--config", "-c", show_default=False,
                                      help="The cluster.yaml: which add-ons it enables and its own kubeconfig.")
OUTPUT_OPTION = typer.Option(Output.text, "--output", "-o", help="text for people, json for scripts.")
IGNORE_PREFLIGHT_OPTION = typer.Option([], "--ignore-preflight", metavar="A,B", show_default=False,
                                       help="Preflight checks whose failure you accept, e.g. template-guestinfo "
                                            "(repeat the option or give a comma list).")


def split_names(text: str | list[str]) -> set[str]:
    """Names from "a,b", or from a repeated option ["a", "b,c"]."""
    parts = [text] if isinstance(text, str) else list(text or [])
    return {s.strip() for part in parts for s in part.split(",") if s.strip()}


def load_config(path: Path, *, quiet: bool = False, defer_secrets: bool = False):
    """Load and check cluster.yaml; warnings go to stderr. Raises ConfigError on any mistake.
    ``defer_secrets``: for commands that may not need them (a missing one fails when it is used)."""
    from ccp import ui
    from ccp.config.load import load

    loaded = load(path, defer_secrets=defer_secrets)
    if not quiet:
        for w in loaded.warnings:
            ui.warn(w)
    return loaded


def cluster_context(ctx: typer.Context, loaded, command: str, *, with_log: bool = True):
    """The ClusterContext for a command, with its state dir, run log and progress reporter."""
    from ccp import ui
    from ccp.context import ClusterContext, state_dir_for
    from ccp.engine.journal import Journal

    from ccp.engine.files import make_private

    state_dir = state_dir_for(loaded.config.metadata.name, ctx.obj.state_dir).absolute()
    make_private(state_dir)
    journal = Journal(state_dir)
    log, log_file = (ui.open_log(state_dir, command, journal.run_id, ctx.obj.debug) if with_log else (None, None))
    cctx = ClusterContext(state_dir=state_dir, log=log, reporter=ui.Reporter(log), loaded=loaded)
    return cctx, journal, log_file


@contextlib.contextmanager
def cluster_run(ctx: typer.Context, loaded, command: str, *, with_log: bool = True):
    """``with cluster_run(...) as (cctx, journal):`` the context of one command on one cluster, knowing what
    earlier runs recorded (the machines' addresses). An error raised in the block carries the run log's
    path (the CLI prints it under the error), and the sessions the command opened (SSH, vSphere) are
    closed however the block ends."""
    from ccp.engine.runner import recall_outputs

    cctx, journal, log_file = cluster_context(ctx, loaded, command, with_log=with_log)
    try:
        recall_outputs(cctx, journal.records())
        yield cctx, journal
    except Exception as exc:
        if log_file is not None:
            exc.log_file = log_file
        raise
    finally:
        cctx.close()


def proceed(*, yes: bool, question: str, refused: tuple[str, str], declined: str = "nothing changed",
            dry_run: bool = False) -> bool:
    """After a plan was shown: whether to carry it out. Not in a dry run (said so); yes with --yes; else
    the user's answer (``declined`` is said on a no). ``refused``: the ConfigError's message and
    resolution when there is no terminal to ask on (a script without --yes)."""
    import sys

    from ccp import ui
    from ccp.errors import ConfigError

    if dry_run:
        ui.out().print("dry run: nothing was changed")
        return False
    if yes:
        return True
    if not sys.stdin.isatty():
        raise ConfigError(*refused)
    if typer.confirm(question):
        return True
    ui.err().print(declined)
    return False


def print_json(data) -> None:
    import json
    import sys

    from ccp import redact

    sys.stdout.write(redact.scrub(json.dumps(data, indent=2, default=str)) + "\n")


KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", help="The cluster to work on. With --config, the default is that cluster's "
                                 "own <state>/kubeconfig and nothing else; without it, $KUBECONFIG or ~/.kube/config.")
ONLY_OPTION = typer.Option("", "--only", metavar="A,B", help="Only these add-ons (`ccp addons list` names them).")


def kubeconfig_for(ctx: typer.Context, kubeconfig: Path | None, loaded=None, *, quiet: bool = False) -> Path:
    """The kubeconfig a command talks to, said out loud (context and server) before anything is done.

    With --config only that cluster's own kubeconfig is used: falling back to $KUBECONFIG could
    apply add-ons to some unrelated cluster that happens to be the current context."""
    import os

    from ccp.errors import ConfigError

    if kubeconfig:
        path, why = kubeconfig, "--kubeconfig"
    elif loaded is not None:
        from ccp.context import state_dir_for

        name = loaded.config.metadata.name
        path, why = state_dir_for(name, ctx.obj.state_dir) / "kubeconfig", f"cluster {name}'s own kubeconfig"
        if not path.exists():
            raise ConfigError(f"cluster {name} has no kubeconfig of its own yet ({path} is missing)",
                              f"finish `ccp install --config {loaded.path}` (its kubeconfig phase writes it), "
                              "or pass --kubeconfig FILE to work on another cluster")
    else:
        env = os.environ.get("KUBECONFIG", "")
        path = Path((env.split(os.pathsep)[0] if env else "~/.kube/config")).expanduser()
        why = "$KUBECONFIG" if env else "~/.kube/config"
    if not path.exists():
        raise ConfigError(f"kubeconfig {path} ({why}) does not exist", "pass --kubeconfig FILE, or --config cluster.yaml")
    if not quiet:
        from ccp import ui

        context, server = describe_kubeconfig(path)
        ui.err().print(f"[dim]cluster: context {ui.escape(context)} at {ui.escape(server)} ({ui.escape(why)}: {path})[/]")
    return path


def describe_kubeconfig(path: Path) -> tuple[str, str]:
    """(current context, its server) of a kubeconfig, or placeholders when it cannot be read."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
        context = data.get("current-context") or "(none)"
        ctx = next((c.get("context") or {} for c in data.get("contexts") or [] if c.get("name") == context), {})
        server = next(((c.get("cluster") or {}).get("server", "?") for c in data.get("clusters") or []
                       if c.get("name") == ctx.get("cluster")), "?")
        return context, server
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return "(unreadable)", "?"


def show_and_confirm(planned, cctx, *, yes: bool, question: str, what: str) -> bool:
    """Print a workflow's plan (raising the first probe error), then ask unless ``yes``.
    False when the user said no; a ConfigError when there is no terminal to ask on."""
    from ccp import plan_view

    for p in planned:
        if p.probe_exc is not None:
            raise p.probe_exc
    plan_view.print_plan(planned, plan_view.inventory_rows(cctx.nodes), cctx.state_dir)
    return proceed(yes=yes, question=question, declined="nothing changed: the plan was not applied",
                   refused=(f"{what} needs confirmation", "review the plan above, then rerun with --yes"))
