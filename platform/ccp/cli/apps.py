"""The typer application and its command groups, and the options every command shares. Apart from
__init__.py, which registers the command modules: they import the apps from here, so the package
and its commands do not import each other (an import cycle)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ccp.cli.help import AddonsGroup, ConfigGroup, SectionedGroup, TopLevelGroup

app = typer.Typer(
    name="ccp",
    cls=TopLevelGroup,
    help="Install and run Kubernetes on vSphere: VMs, a highly available kubeadm control plane, "
         "storage, ingress, monitoring and logging — proven working at the end.\n\n"
         "Start with `ccp config init > cluster.yaml`, then `ccp plan --config cluster.yaml`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,   # we print errors ourselves; never locals (they may hold a password)
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: rich-formatted help costs ~80 ms on every `ccp --help` (bench/cli_startup.py)
    context_settings={"help_option_names": ["-h", "--help"]},
)
config_app = typer.Typer(help="Check cluster.yaml, print its JSON schema, or write a commented example.",
                         no_args_is_help=True, cls=ConfigGroup)
app.add_typer(config_app, name="config")
addons_app = typer.Typer(help="The platform add-ons (storage, ingress, monitoring, logging) on any cluster.",
                         no_args_is_help=True, cls=AddonsGroup)
app.add_typer(addons_app, name="addons")
certs_app = typer.Typer(help="Certificates of the cluster: how long each one still has.", no_args_is_help=True,
                        cls=SectionedGroup)
app.add_typer(certs_app, name="certs")
secrets_app = typer.Typer(help="The cluster's Secrets at rest: rotate the key etcd stores them encrypted with.",
                          no_args_is_help=True, cls=SectionedGroup)
app.add_typer(secrets_app, name="secrets")
bundle_app = typer.Typer(help="The offline bundle for air-gapped sites: what is needed, assemble it, verify it.",
                         no_args_is_help=True, cls=SectionedGroup)
app.add_typer(bundle_app, name="bundle")
node_app = typer.Typer(help="One node of the cluster: replace a broken one.", no_args_is_help=True, cls=SectionedGroup)
app.add_typer(node_app, name="node")
appliance_app = typer.Typer(help="The ccp appliance: build the OVA, deploy it to vCenter.", no_args_is_help=True,
                            cls=SectionedGroup)
app.add_typer(appliance_app, name="appliance")


class Globals:
    def __init__(self, state_dir: Path | None, debug: bool):
        self.state_dir = state_dir
        self.debug = debug


def _print_version(value: bool) -> None:
    if value:
        from ccp import __version__

        sys.stdout.write(f"ccp {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _global_options(
    ctx: typer.Context,
    state_dir: Optional[Path] = typer.Option(
        None, "--state-dir", envvar="CCP_STATE_DIR",
        help="Where ccp keeps this cluster's journal, logs and rendered files. Default: ./.ccp/CLUSTER-NAME/."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and write debug detail to the run log."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print ccp's version and exit (`ccp version` says more)."),
) -> None:
    ctx.obj = Globals(state_dir, debug)
