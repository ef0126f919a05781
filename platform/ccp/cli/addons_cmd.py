from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import addons_app
from ccp.cli.common import CONFIG_OPTION, ONLY_OPTION, OUTPUT_OPTION, Output, load_config, print_json, split_names


@addons_app.command("list")
def list_addons(config: Optional[Path] = typer.Option(None, "--config", "-c", help="Also say which are enabled."),
                output: Output = OUTPUT_OPTION) -> None:
    """The bundled add-ons, in the order they are applied."""
    from ccp import addons, ui

    cfg = load_config(config, quiet=True).config if config else None
    rows = [{"addon": a.name, "namespace": a.namespace, "dependsOn": a.depends_on, "description": a.description,
             "enabled": addons.is_enabled(a, cfg) if cfg else None} for a in addons.order(addons.discover())]
    if output is Output.json:
        print_json(rows)
        return
    for r in rows:
        if r["enabled"] is None:   # plain lines: without --config the listing need not load rich
            ui.line(f"{r['addon']:<14} {r['namespace']:<20} {r['description']}")
            continue
        mark = "[green]enabled[/]  " if r["enabled"] else "[dim]disabled[/] "
        ui.out().print(f"{mark}{r['addon']:<14} {r['namespace']:<20} {ui.escape(r['description'])}")


@addons_app.command("render")
def render_addons(config: Path = CONFIG_OPTION, out: Optional[Path] = typer.Option(None, "--out", help="Write <addon>.yaml files here."),
                  only: str = ONLY_OPTION) -> None:
    """The enabled add-ons' manifests: one multi-document YAML on stdout, or a file per add-on with --out.
    Secrets are listed, never written."""
    import sys

    from ccp import addons, redact, ui
    from ccp.config.versions import bom_of
    from ccp.engine.files import atomic_write, ensure_dir

    cfg = load_config(config, quiet=out is None).config
    bom = bom_of(cfg)
    rendered = [addons.render(a, cfg, bom) for a in addons.enabled_addons(cfg, sorted(split_names(only)) or None)]
    if out is None:
        sys.stdout.write(redact.scrub("---\n".join(r.text() for r in rendered)))
        return
    ensure_dir(out)
    for r in rendered:
        atomic_write(out / f"{r.addon.name}.yaml", r.text(), fsync=False)
    ui.err().print(f"wrote {len(rendered)} add-ons to {out}: {', '.join(r.addon.name for r in rendered)}")
