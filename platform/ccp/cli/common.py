"""Options and helpers the command files share."""

from __future__ import annotations

import enum
from pathlib import Path

import typer


class Output(str, enum.Enum):
    text = "text"
    json = "json"


CONFIG_OPTION = typer.Option(..., "--config", "-c", help="The cluster.yaml to use.", show_default=False)
OUTPUT_OPTION = typer.Option(Output.text, "--output", "-o", help="text for people, json for scripts.")
IGNORE_PREFLIGHT_OPTION = typer.Option("", "--ignore-preflight", metavar="A,B",
                                       help="Preflight checks whose failure you accept, e.g. template-guestinfo.")


def split_names(text: str) -> set[str]:
    return {s.strip() for s in text.split(",") if s.strip()}


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

    state_dir = state_dir_for(loaded.config.metadata.name, ctx.obj.state_dir).absolute()
    journal = Journal(state_dir)
    log, log_file = (ui.open_log(state_dir, command, journal.run_id, ctx.obj.debug) if with_log else (None, None))
    cctx = ClusterContext(state_dir=state_dir, log=log, reporter=ui.Reporter(log), loaded=loaded)
    return cctx, journal, log_file


def print_json(data) -> None:
    import json
    import sys

    from ccp import redact

    sys.stdout.write(redact.scrub(json.dumps(data, indent=2, default=str)) + "\n")


KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", help="Default: the cluster's <state>/kubeconfig with --config, "
                                 "else $KUBECONFIG or ~/.kube/config.")
ONLY_OPTION = typer.Option("", "--only", metavar="A,B", help="Only these add-ons.")


def kubeconfig_for(ctx: typer.Context, kubeconfig: Path | None, loaded=None) -> Path:
    import os

    if kubeconfig:
        return kubeconfig
    if loaded is not None:
        from ccp.context import state_dir_for

        own = state_dir_for(loaded.config.metadata.name, ctx.obj.state_dir) / "kubeconfig"
        if own.exists():
            return own
    return Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()
