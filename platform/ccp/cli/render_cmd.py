from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, cluster_run, load_config, print_json


@app.command("render")
def render(
    ctx: typer.Context,
    config: Path = CONFIG_OPTION,
    out: Optional[Path] = typer.Option(None, "--out", help="Directory to write into. Default: <state>/rendered/."),
    output: Output = OUTPUT_OPTION,
) -> None:
    """Write every file an install uses (Terraform, cloud-init, kubeadm, NGINX, keepalived) without touching
    any infrastructure. Unchanged files are left alone; secrets are never written. Nodes that exist keep
    the addresses the state directory recorded for them."""
    from ccp import render as core

    loaded = load_config(config, quiet=output is Output.json, defer_secrets=True)   # none is rendered
    with cluster_run(ctx, loaded, "render", with_log=False) as (cctx, _):   # the machines' recorded addresses
        out_dir = out or cctx.rendered_dir
        rendered = cctx.rendered
    changes = core.write(rendered, out_dir)
    counts = {a: sum(1 for c in changes if c.action == a) for a in ("create", "update", "keep", "delete")}
    if output is Output.json:
        print_json({"dir": str(out_dir), "files": sorted(rendered.files), "changes": counts})
        return
    from rich.table import Table

    from ccp import ui

    table = Table(show_edge=False, pad_edge=False)
    for col in ("directory", "files"):
        table.add_column(col, justify="right" if col == "files" else "left")
    for group, n in sorted(rendered.by_group().items()):
        table.add_row(f"{group}/", str(n))
    ui.out().print(table)
    ui.out().print(f"{len(rendered.files)} files in {out_dir}: {counts['create']} new, {counts['update']} changed, "
                   f"{counts['keep']} unchanged, {counts['delete']} removed")
