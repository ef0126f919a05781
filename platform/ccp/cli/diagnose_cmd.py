from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import app
from ccp.cli.common import KUBECONFIG_OPTION, OPTIONAL_CONFIG_OPTION, OUTPUT_OPTION, Output, print_json, split_names


@app.command("diagnose")
def diagnose(ctx: typer.Context, config: Optional[Path] = OPTIONAL_CONFIG_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
             bundle: Optional[Path] = typer.Option(None, "--bundle", metavar="OUT.tar.gz",
                                                   help="Also write a support bundle (findings, cluster state, logs, ccp's journal), redacted."),
             only: str = typer.Option("", "--only", metavar="A,B", help="Sections: vsphere (or machines, with provisioner: local), hosts, kubernetes, addons, certs, hardening."),
             output: Output = OUTPUT_OPTION) -> None:
    """Find what is wrong with a cluster and say what to do: vSphere, hosts, Kubernetes, add-ons, certificates, hardening.

    With --config: everything (vSphere, SSH and the hardening checks need cluster.yaml). With only --kubeconfig: the Kubernetes,
    add-on and certificate checks. Changes nothing. Exit 9 when a finding fails."""
    from ccp import ui
    from ccp.cli.diagnose_common import open_targets
    from ccp.diagnose import bundle as bundle_mod
    from ccp.diagnose import report, runner

    chosen = runner.check_sections(split_names(only))
    if bundle is not None:
        bundle_mod.writable(bundle)
    say = (lambda text: None) if output is Output.json else (lambda text: ui.err().print(f"  [dim]{ui.escape(text)}[/]"))
    with open_targets(ctx, config, kubeconfig, chosen) as (cctx, kube, kube_path):
        rep = runner.run(ctx=cctx, kube=kube, kubeconfig=kube_path, only=chosen, bundle=bundle is not None, say=say)
    if output is Output.json:
        print_json({"findings": [f.to_dict() for f in rep.findings], "seconds": rep.seconds})
    else:
        report.print_table(rep.findings)
    if bundle is not None:
        manifest = bundle_mod.write(bundle, rep.files)
        ui.err().print(f"bundle: {bundle} ({len(manifest['files'])} files, secrets redacted)")
    report.raise_if_failed(rep.findings)
