from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import app
from ccp.cli.common import (KUBECONFIG_OPTION, OUTPUT_OPTION, Output, cluster_run, kubeconfig_for, load_config, print_json,
                            split_names)


@app.command("validate")
def validate(ctx: typer.Context, config: Optional[Path] = typer.Option(None, "--config", "-c", help="Take options from cluster.yaml."),
             kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
             storage_class: Optional[str] = typer.Option(None, "--storage-class", help="Default: the cluster's default class."),
             image: Optional[str] = typer.Option(None, "--image", help="Test pods' image (needs sh, sha256sum, wget, nslookup, httpd)."),
             only: str = typer.Option("", "--only", metavar="A,B", help="pvc-persistence, api-endpoint, dns, service-and-policy, metrics, logs."),
             timeout: int = typer.Option(300, "--timeout", help="Seconds each wait may take."),
             output: Output = OUTPUT_OPTION) -> None:
    """Prove the cluster works: data on a volume survives its pod moving to another node, the API
    answers, DNS resolves, a Service answers on its ClusterIP and NetworkPolicy blocks it, metrics and logs arrive.
    A check that does not apply is skipped with its reason, never passed. Cleans up after itself. Exit 8 on a failure."""
    from ccp import ui
    from ccp.validation import runner
    from ccp.validation.base import Options
    from ccp.validation.options import from_config
    from ccp.validation.port import LightkubeValidation

    chosen = sorted(split_names(only)) or None
    runner.check_names(chosen)
    loaded = load_config(config, quiet=True) if config else None
    if loaded:
        with cluster_run(ctx, loaded, "validate", with_log=False) as (cctx, _):   # the control planes' recorded addresses
            opts = from_config(loaded.config, nodes=cctx.nodes, storage_class=storage_class, image=image, timeout=timeout)
    else:
        opts = Options(storage_class=storage_class, timeout=timeout, **({"image": image} if image else {}))
    port = LightkubeValidation(kubeconfig_for(ctx, kubeconfig, loaded))
    say = (lambda text: None) if output is Output.json else (lambda text: ui.err().print(f"  [dim]{ui.escape(text)}[/]"))
    results, notes = runner.run(port, opts, only=chosen, say=say)
    if output is Output.json:
        from ccp.validation.report import counts, summary

        print_json({"results": [r.as_dict() for r in results], "counts": counts(results), "summary": summary(results), "notes": notes})
    else:
        from ccp.validation.report import print_table

        print_table(results, notes)
    runner.raise_if_failed(results)
