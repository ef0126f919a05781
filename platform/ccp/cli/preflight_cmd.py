from pathlib import Path

import typer

from ccp.cli.apps import app
from ccp.cli.common import (CONFIG_OPTION, IGNORE_PREFLIGHT_OPTION, OUTPUT_OPTION, Output, cluster_run,
                            load_config, print_json, split_names)


@app.command("preflight")
def preflight(ctx: typer.Context, config: Path = CONFIG_OPTION, ignore_preflight: list[str] = IGNORE_PREFLIGHT_OPTION,
              output: Output = OUTPUT_OPTION) -> None:
    """Check vCenter without changing anything: login and TLS, every inventory name, datastore space,
    cluster capacity, the template, and VMs that already use this cluster's names. With provisioner:
    local, check this host instead (root, tools, kernel, memory, addresses). Exit 3 on a failure."""
    from ccp import ui
    from ccp.errors import ConfigError
    from ccp.providers.checks import check_vsphere, local_checks, raise_on_failures

    loaded = load_config(config, quiet=output is Output.json)
    if loaded.config.spec.provisioner == "static":
        raise ConfigError("provisioner: static has no vCenter to check", "nothing to do; the hosts phases check the machines")
    with cluster_run(ctx, loaded, "preflight", with_log=False) as (cctx, _):
        cctx.ignore_preflight = split_names(ignore_preflight)
        results = local_checks(cctx) if loaded.config.spec.provisioner == "local" else check_vsphere(cctx)
    if output is Output.json:
        print_json({"checks": [r.__dict__ for r in results], "ok": not any(r.status == "fail" for r in results)})
    else:
        ui.print_checks(results, ui.out())
    raise_on_failures(results)
