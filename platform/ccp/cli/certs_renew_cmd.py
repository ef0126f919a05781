from pathlib import Path

import typer

from ccp.cli.apps import certs_app
from ccp.cli.common import CONFIG_OPTION


@certs_app.command("renew")
def renew(ctx: typer.Context, config: Path = CONFIG_OPTION,
          yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask: each control plane's API server restarts in turn."),
          timeout: int = typer.Option(300, "--timeout", help="Seconds to wait for the API through the VIP after each control plane.")) -> None:
    """Renew every kubeadm certificate, one control plane at a time, waiting for the API through the VIP after each.

    Also for a cluster whose certificates expired while it was off. Rewrites <state>/kubeconfig at the end."""
    from ccp import ui, workflows
    from ccp.cli.common import cluster_run, load_config, proceed
    from ccp.diagnose import renew as core

    loaded = load_config(config)
    if not proceed(yes=yes, question="Renew the certificates and restart each control plane's static pods in turn?",
                   refused=("ccp certs renew restarts the control planes' static pods and needs confirmation", "rerun with --yes")):
        return
    with cluster_run(ctx, loaded, "certs-renew") as (cctx, _):
        done = core.renew(cctx, timeout=timeout, say=lambda text: ui.err().print(f"  {ui.escape(text)}"))
        for phase in workflows.certs_renew():
            phase.apply(cctx, [])
    for d in done:
        ui.out().print(f"[green]✓[/] {d['node']}: renewed; its API server and etcd serve the new certificates, the API answers through the VIP ({d['seconds']}s)")
    ui.out().print(f"certificates renewed on {len(done)} control planes; {cctx.state_dir / 'kubeconfig'} rewritten")
