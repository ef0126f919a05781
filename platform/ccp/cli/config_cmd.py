from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import config_app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, load_config, print_json


@config_app.command("validate")
def validate(config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Check cluster.yaml: every mistake is reported as file:line:col with what to do. Exit 2 if any."""
    from ccp.config import inventory
    from ccp.errors import ConfigError

    try:
        loaded = load_config(config, quiet=output is Output.json)
    except ConfigError as exc:
        if output is Output.json:
            print_json({"valid": False, "errors": exc.details or [exc.message], "resolution": exc.resolution})
            raise typer.Exit(exc.code) from None
        raise
    cfg = loaded.config
    nodes = inventory.build(cfg)
    summary = {"cluster": cfg.metadata.name, "kubernetes": cfg.spec.kubernetes.version, "vms": len(nodes),
               "roles": {r: len(inventory.by_role(nodes, r)) for r in (inventory.ROLE_CP, inventory.ROLE_WORKER, inventory.ROLE_LB)}}
    if output is Output.json:
        print_json({"valid": True, "warnings": loaded.warnings, **summary})
        return
    from ccp import ui

    roles = ", ".join(f"{n} {r}" for r, n in summary["roles"].items())
    ui.out().print(f"[green]✓[/] {config} is valid: cluster {cfg.metadata.name}, Kubernetes {summary['kubernetes']}, "
                   f"{summary['vms']} VMs ({roles})")


@config_app.command("schema")
def schema() -> None:
    """Print the JSON schema of cluster.yaml (for editor completion: yaml-language-server)."""
    from ccp.config.schema import json_schema

    print_json(json_schema())


@config_app.command("init")
def init(
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of stdout."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Write a commented example cluster.yaml to start from."""
    from ccp.config.schema import example_text
    from ccp.errors import ConfigError

    text = example_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists", "choose another --out, or pass --force to overwrite it")
    out.write_text(text)
    from ccp import ui

    ui.err().print(f"wrote {out}; edit it, then run `ccp config validate --config {out}`")
