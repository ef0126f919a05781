"""What preflight checks share, whatever they check (vCenter, the local host)."""

from __future__ import annotations

from pathlib import Path

from ccp.errors import PreflightError


def raise_on_failures(results) -> None:
    failed = [r for r in results if r.status == "fail"]
    if failed:
        raise PreflightError(
            f"{len(failed)} preflight check{'s' if len(failed) != 1 else ''} failed: {', '.join(r.name for r in failed)}",
            "fix what each check says, or skip a check you accept with --ignore-preflight NAME",
            [f"{r.name}: {r.message}" + (f"\n    -> {r.remediation}" if r.remediation else "") for r in failed])


def check_vsphere(ctx) -> list:
    """vCenter — access, inventory, capacity and names (the preflight/vsphere phase and `ccp preflight`)."""
    from ccp.providers.vsphere_preflight import run_checks

    return run_checks(ctx.vsphere(), ctx.ignore_preflight)


def local_checks(ctx) -> list:
    """provisioner: local — the host can run this cluster's machines (root, tools, kernel, memory,
    addresses, inotify). A check named in --ignore-preflight is reported as ignored, never as passed."""
    from ccp.providers.local import bridge_name
    from ccp.providers.local_machines import LocalHost
    from ccp.providers.vsphere_preflight import CheckResult

    cfg = ctx.config
    nodes = ctx.nodes
    need = sum(LOCAL_MEMORY_MIB.get(n.role, 512) for n in nodes)
    net = cfg.spec.nodes.network
    host = LocalHost(Path(cfg.spec.local.machinesDir), Path(cfg.spec.local.rootfsCache))
    out = []
    for name, status, detail in host.preflight(len(nodes), need, str(net.cidr), str(net.gateway), bridge=bridge_name(cfg)):
        status = {"ok": "pass"}.get(status, status)
        if name in ctx.ignore_preflight and status in ("warn", "fail"):
            status, detail = "ignored", f"{detail} (ignored with --ignore-preflight)"
        what, _, todo = detail.partition(" -> ")
        out.append(CheckResult(name, status, what, todo))
    return out


# What a local machine of each role uses, measured on a 2-core host (a VM's memoryMiB is a reservation
# the host does not make for a machine): control plane ~1 GiB, worker ~100 MiB, load balancer ~40 MiB.
LOCAL_MEMORY_MIB = {"control-plane": 1100, "worker": 150, "loadbalancer": 64}
