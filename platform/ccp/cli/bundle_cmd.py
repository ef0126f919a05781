from pathlib import Path

import typer

from ccp.cli.apps import bundle_app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, load_config, print_json


@bundle_app.command("manifest")
def manifest(config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Everything this cluster needs offline: images, node packages, the Terraform provider, with versions."""
    from ccp import ui
    from ccp.bundle.manifest import items

    found = items(load_config(config, quiet=True, defer_secrets=True).config)
    if output is Output.json:
        print_json({"items": [i.to_dict() for i in found]})
        return
    for i in found:
        ui.out().print(f"{i.kind:<18} {ui.escape(i.name)} {ui.escape(i.version)}  [dim]{ui.escape(i.pattern)}"
                       f"{'  sha256 ' + i.sha256 if i.sha256 else ''}[/]")


@bundle_app.command("create")
def create(config: Path = CONFIG_OPTION,
           source: Path = typer.Option(..., "--from", metavar="DIR", help="A directory with images/, packages/ and terraform/ filled from your mirror."),
           out: Path = typer.Option(..., "--out", metavar="BUNDLE", help="The bundle file to write (a tar)."),
           with_bom: list[Path] = typer.Option([], "--with-bom", metavar="FILE",
                                               help="Also pack what this bill of materials needs: the target of a later "
                                                    "`ccp upgrade --bill-of-materials FILE` (repeatable).")) -> None:
    """Assemble an offline bundle from local files; lists exactly what is missing if anything is.

    With --with-bom, the bundle holds both the running version and an upgrade's target, so an
    air-gapped cluster upgrades from it: `ccp upgrade` stages the target's part on every node."""
    from ccp import ui
    from ccp.bundle import archive
    from ccp.bundle.manifest import items_with

    needed = items_with(load_config(config, quiet=True, defer_secrets=True).config, with_bom)
    index = archive.create(needed, source, out,
                           say=lambda text: ui.err().print(f"  [dim]{ui.escape(text)}[/]"))
    ui.out().print(f"wrote {out}: {len(index['items'])} items, {sum(e['bytes'] for e in index['items'])} bytes")


@bundle_app.command("verify")
def verify(config: Path = CONFIG_OPTION,
           bundle: Path = typer.Option(..., "--bundle", metavar="BUNDLE", help="The bundle made by `ccp bundle create`."),
           with_bom: list[Path] = typer.Option([], "--with-bom", metavar="FILE",
                                               help="Also check what this bill of materials needs (an upgrade's target; repeatable)."),
           output: Output = OUTPUT_OPTION) -> None:
    """Check that the bundle holds every item this cluster needs with a matching sha256 (exit 3 if not)."""
    from ccp import ui
    from ccp.bundle import archive
    from ccp.bundle.manifest import items_with

    v = archive.verify(items_with(load_config(config, quiet=True, defer_secrets=True).config, with_bom), bundle)
    if output is Output.json:
        print_json({"ok": v.ok, "present": v.present, "missing": v.missing, "damaged": v.damaged})
    elif v.ok:
        ui.out().print(f"[green]complete:[/] all {len(v.present)} items present with matching sha256")
    archive.raise_unless_complete(v, bundle)
