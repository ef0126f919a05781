from pathlib import Path
from typing import Optional

import typer

from ccp.cli.apps import certs_app
from ccp.cli.common import KUBECONFIG_OPTION, OPTIONAL_CONFIG_OPTION, OUTPUT_OPTION, Output, print_json


@certs_app.command("check")
def check(ctx: typer.Context, config: Optional[Path] = OPTIONAL_CONFIG_OPTION, kubeconfig: Optional[Path] = KUBECONFIG_OPTION,
          output: Output = OUTPUT_OPTION) -> None:
    """Days to expiry of every certificate that can take the cluster down (warn < 30, fail < 7; exit 9).

    With --config: kubeadm's PKI on each control plane over SSH, the renewal timers (a missing one, or one
    whose last run failed, fails; the warning starts at spec.security.certificates.renewBeforeDays), and
    the cluster's kubeconfig and serving certificate; with only --kubeconfig: its client certificates and
    the serving certificate."""
    from ccp.cli.diagnose_common import open_targets
    from ccp.diagnose import report, runner

    with open_targets(ctx, config, kubeconfig, {"certs"}) as (cctx, _, kube_path):
        rep = runner.run(ctx=cctx, kube=None, kubeconfig=kube_path, only={"certs"})
    rows = [f for f in rep.findings if f.section == "certs"]
    if output is Output.json:
        print_json({"certificates": [{"where": c.where, "subject": c.subject, "notAfter": c.not_after.isoformat(),
                                      "days": round(c.days, 1), "severity": c.severity} for c in rep.certs],
                    "findings": [f.to_dict() for f in rows]})
    else:
        report.print_certs(rep.certs)
        unread = [f for f in rows if f.check != "expiry" or not rep.certs]
        if unread:
            report.print_table(unread, "renewal timers and what was not read")
    report.raise_if_failed(rows)

