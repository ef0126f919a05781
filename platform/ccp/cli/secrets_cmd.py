from pathlib import Path

import typer

from ccp.cli.apps import secrets_app
from ccp.cli.common import CONFIG_OPTION


@secrets_app.command("rotate-key")
def rotate_key(ctx: typer.Context, config: Path = CONFIG_OPTION,
               yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask: each control plane's API server restarts three times, in turn."),
               resume: bool = typer.Option(False, "--resume", help="Continue a rotation that stopped (failure, Ctrl-C, a killed ccp) without asking.")) -> None:
    """Encrypt the cluster's Secrets with a new key and drop the old one, one API server at a time.

    The rotation Kubernetes documents, each step a journaled phase: (1) a new key is made and kept in
    <state>/secrets/encryption-keys/ (0600) before any control plane gets it; (2) every control plane's
    encryption configuration gets it as a second key, and each API server is restarted in turn, its own
    /readyz and then the API through the VIP awaited before the next; (3) the new key is made first (and
    <state>/secrets/encryption-key), restarted again; (4) every Secret, and every other resource
    spec.security.encryption.resources lists, is written again, and etcd is checked to hold nothing stored
    with the old key; (5) the old key is dropped, restarted once more, and only then removed from
    <state>/secrets. The API answers throughout.

    A stopped rotation goes on with --resume (or the same command), redoing nothing done. Keys appear only in
    <state>/secrets and in the 0600 files on the control planes: never on the console, in a log, the journal or
    a command line. Take a backup first: `ccp backup` keeps the keys its snapshot needs beside it.

    Example: ccp secrets rotate-key --config cluster.yaml --yes"""
    from ccp import ui, workflows
    from ccp.cli.common import cluster_run, load_config, show_and_confirm
    from ccp.cluster.security_change import rotation_target
    from ccp.engine import runner

    loaded = load_config(config)
    with cluster_run(ctx, loaded, "rotate-key") as (cctx, journal):
        key, continuing = rotation_target(cctx, journal.records(), resume=resume)
        if continuing:
            ui.err().print(f"[yellow]continuing the rotation to key {key}, which did not finish[/]")
        flow = workflows.rotate_key(key)
        planned = runner.plan(flow, cctx, journal)
        if not show_and_confirm(planned, cctx, yes=yes or resume, what="ccp secrets rotate-key restarts every API server three times and",
                                question=f"Rotate the encryption key to {key}?"):
            return
        runner.run(flow, cctx, journal, command="rotate-key", resume_hint=f"ccp secrets rotate-key --config {config} --resume")
        gone = cctx.outputs.get(f"rotate-key/{key}/drop", {}).get("forgotten", [])
    ui.out().print(f"[green]rotated[/]: the cluster's Secrets are stored with key {key}"
                   + (f"; {', '.join(gone)} is gone from every control plane and from <state>/secrets" if gone else ""))
