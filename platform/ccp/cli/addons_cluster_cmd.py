from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import addons_app
from ccp.cli.common import (CONFIG_OPTION, KUBECONFIG_OPTION, ONLY_OPTION, OPTIONAL_CONFIG_OPTION, OUTPUT_OPTION, Output, kubeconfig_for,
                            load_config, print_json, split_names)


@addons_app.command("apply")
def apply(ctx: typer.Context, config: Path = CONFIG_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
          only: str = ONLY_OPTION, no_wait: bool = typer.Option(False, "--no-wait", help="Do not wait for readiness."),
          timeout: int = typer.Option(600, "--timeout", help="Seconds to wait for each add-on.")) -> None:
    """Apply the enabled add-ons (server-side apply, field manager ccp), prune what they no longer
    render, and wait until their workloads are ready. Works on any cluster."""
    from ccp import addons, ui
    from ccp.addons import apply as addons_apply
    from ccp.config.versions import bom_of
    from ccp.remote.kube_objects import LightkubeObjects

    loaded = load_config(config)
    cfg = loaded.config
    port = LightkubeObjects(kubeconfig_for(ctx, kubeconfig, loaded))
    bom = bom_of(cfg)
    for addon in addons.enabled_addons(cfg, sorted(split_names(only)) or None):
        res = addons_apply.apply_one(port, addons.render(addon, cfg, bom, with_secrets=True, existing=port.get_secret),
                                     wait=not no_wait,
                                     timeout=timeout, say=lambda text: ui.err().print(f"  {ui.escape(text)}"))
        ui.out().print(f"[green]✓[/] {addon.name}: {res.applied} objects, {len(res.pruned)} pruned, "
                       f"{'ready' if res.ready or not no_wait else 'not waited for'} ({res.seconds:.1f}s)")


@addons_app.command("status")
def status(ctx: typer.Context, config: Optional[Path] = OPTIONAL_CONFIG_OPTION,
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Per add-on: installed or not, ccp version, up to date with cluster.yaml, workload health."""
    from ccp import addons, ui
    from ccp.addons import apply as addons_apply
    from ccp.config.versions import bom_of
    from ccp.remote.kube_objects import LightkubeObjects

    loaded = load_config(config, quiet=True) if config else None
    port = LightkubeObjects(kubeconfig_for(ctx, kubeconfig, loaded))
    every = addons.order(addons.discover())
    enabled, digests = set(), {}
    if loaded:
        cfg, bom = loaded.config, bom_of(loaded.config)
        enabled = {a.name for a in every if addons.is_enabled(a, cfg)}
        digests = {a.name: addons.render(a, cfg, bom).digest for a in every if a.name in enabled}
    rows = addons_apply.status(port, every, enabled if loaded else {a.name for a in every}, digests)
    if output is Output.json:
        print_json(rows)
        return
    for r in rows:
        color = {"healthy": "green", "unhealthy": "red"}.get(r["state"], "dim")
        ui.out().print(f"{r['addon']:<14} [{color}]{r['state']}[/]" + (f"  ccp {r['version']}" if r["version"] else ""))
        for h in r["health"]:
            ui.out().print(f"    {h['object']}: {ui.escape(h['detail'])}")


@addons_app.command("delete")
def delete(ctx: typer.Context, config: Optional[Path] = OPTIONAL_CONFIG_OPTION,
           kubeconfig: Optional[Path] = KUBECONFIG_OPTION, only: str = ONLY_OPTION,
           yes: bool = typer.Option(False, "--yes", "-y", help="Confirm the deletion (required: it removes workloads and their data).")) -> None:
    """Remove add-ons: every object labelled as theirs by ccp (namespaces last), nothing else."""
    from ccp import addons, ui
    from ccp.addons import apply as addons_apply
    from ccp.errors import ConfigError
    from ccp.remote.kube_objects import LightkubeObjects

    loaded = load_config(config, quiet=True) if config else None
    chosen = addons.order(addons.discover(), sorted(split_names(only)) or None)
    if not yes:
        raise ConfigError(f"this deletes the add-ons {', '.join(a.name for a in chosen)} and their namespaces", "rerun with --yes")
    port = LightkubeObjects(kubeconfig_for(ctx, kubeconfig, loaded))
    for addon in reversed(chosen):
        gone = addons_apply.delete(port, addon)
        ui.out().print(f"{addon.name}: removed {len(gone)} objects")
