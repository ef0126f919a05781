"""provisioner: local — the machines on this host: every node's machine present and running, and
machines recorded for the cluster that cluster.yaml no longer lists."""

from __future__ import annotations

from pathlib import Path

from ccp.diagnose.base import Finding, sample


def findings(cfg, nodes) -> list[Finding]:
    from ccp.providers.local_machines import LocalHost

    host = LocalHost(Path(cfg.spec.local.machinesDir), Path(cfg.spec.local.rootfsCache))
    name = cfg.metadata.name
    state = {n.name: host.status(name, n.name) for n in nodes}
    out = []
    missing = sorted(n for n, s in state.items() if s == "absent")
    stopped = sorted(n for n, s in state.items() if s == "stopped")
    if missing:
        out.append(Finding("machines", "present", "fail", f"{len(missing)} machines of the cluster are missing", sample(missing),
                           "`ccp install --config cluster.yaml` creates them again (or `ccp node replace` for one)"))
    if stopped:
        out.append(Finding("machines", "running", "fail", f"{len(stopped)} machines are stopped", sample(stopped),
                           "`ccp install --config cluster.yaml` starts them; their console logs are under spec.local.machinesDir"))
    if not missing and not stopped:
        out.append(Finding("machines", "running", "ok", f"all {len(nodes)} machines run", []))
    extra = sorted(set(host.machines(name)) - set(state))
    if extra:
        out.append(Finding("machines", "orphans", "warn", f"{len(extra)} machines of the cluster are not in cluster.yaml", sample(extra),
                           "`ccp apply` takes them out of the cluster and removes them"))
    return out
