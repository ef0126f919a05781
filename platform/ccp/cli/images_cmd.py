from pathlib import Path

from ccp.cli.apps import app
from ccp.cli.common import CONFIG_OPTION, OUTPUT_OPTION, Output, load_config, print_json


@app.command("images")
def images(config: Path = CONFIG_OPTION, output: Output = OUTPUT_OPTION) -> None:
    """Every container image the cluster needs (Kubernetes, CNI, enabled add-ons) — to mirror them
    for an air-gapped install. spec.registryMirror is applied."""
    from ccp import addons, ui
    from ccp.config.versions import bom_of

    loaded = load_config(config, quiet=output is Output.json, defer_secrets=True)   # none is rendered
    cfg = loaded.config
    found = addons.all_images(cfg, bom_of(cfg))
    if output is Output.json:
        print_json({"kubernetes": cfg.spec.kubernetes.version, "registryMirror": cfg.spec.registryMirror, "images": found})
    else:
        for image in found:
            ui.out().print(image)
