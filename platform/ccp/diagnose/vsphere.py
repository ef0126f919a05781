"""vSphere findings through the same read-only session preflight uses: reachability and TLS, every VM
of the cluster present, powered on and running VMware Tools, datastore space, leftover snapshots, and
VMs carrying the cluster's mark that cluster.yaml no longer lists."""

from __future__ import annotations

from ccp.diagnose.base import Finding, sample
from ccp.errors import CcpError


def findings(inv, nodes) -> list[Finding]:
    from pyVmomi import vim

    from ccp.providers import vsphere_session as vs

    out = []
    cfg = inv.cfg
    try:
        session = inv.session
    except CcpError as exc:
        return [Finding("vsphere", "connect", "fail", exc.message, [], exc.resolution)]
    tls = "TLS not verified (insecure: true)" if inv.vs.insecure else "TLS verified"
    out.append(Finding("vsphere", "connect", "warn" if inv.vs.insecure else "ok", f"vCenter {inv.vs.server}: {tls}", [],
                       "set vsphere.caFile or thumbprint to verify vCenter's certificate" if inv.vs.insecure else ""))
    observed = inv.observe()
    ours = {n: vm for n, vm in observed.items() if vm.owner == cfg.metadata.name}
    missing = [n.name for n in nodes if n.name not in ours]
    if missing:
        out.append(Finding("vsphere", "vms-present", "fail", f"{len(missing)} VMs of the cluster are missing", sample(missing),
                           "`ccp install --config cluster.yaml --resume` re-creates them (or `ccp node replace` for one)"))
    props = vs.retrieve(session, [vm.ref for vm in ours.values()], vim.VirtualMachine,
                        ["guest.toolsRunningStatus", "snapshot", "runtime.powerState"]) if ours else {}
    off = [n for n, vm in ours.items() if props.get(vm.ref, {}).get("runtime.powerState", vm.power) != "poweredOn"]
    if off:
        out.append(Finding("vsphere", "vms-powered-on", "fail", f"{len(off)} VMs are not powered on", sample(sorted(off)),
                           "power them on in vCenter; `ccp install --resume` does it too"))
    no_tools = [n for n, vm in ours.items() if n not in off
                and props.get(vm.ref, {}).get("guest.toolsRunningStatus") != "guestToolsRunning"]
    if no_tools:
        out.append(Finding("vsphere", "vmware-tools", "warn", f"VMware Tools is not running on {len(no_tools)} VMs", sample(sorted(no_tools)),
                           "open-vm-tools must run in the template (addresses and guestinfo depend on it)"))
    snaps = [n for n, vm in ours.items() if props.get(vm.ref, {}).get("snapshot") is not None]
    if snaps:
        out.append(Finding("vsphere", "snapshots", "warn", f"{len(snaps)} VMs have snapshots", sample(sorted(snaps)),
                           "old snapshots grow without bound and slow disks: consolidate or delete them"))
    names = {n.name for n in nodes}
    strays = sorted(n for n in ours if n not in names)
    if strays:
        out.append(Finding("vsphere", "orphan-vms", "warn", f"{len(strays)} VMs carry the cluster's mark but are not in cluster.yaml",
                           sample(strays), "remove them in vCenter if they are no longer needed (ccp never deletes them on its own)"))
    pl = inv.placement()
    if pl.datastore is not None:
        d = vs.retrieve(session, [pl.datastore], vim.Datastore, ["summary.freeSpace", "summary.capacity"])[pl.datastore]
        free, cap = d.get("summary.freeSpace", 0), d.get("summary.capacity", 0) or 1
        pct = 100 * free / cap
        sev = "fail" if pct < 5 else "warn" if pct < 15 else "ok"
        out.append(Finding("vsphere", "datastore-space", sev, f"datastore {inv.vs.datastore}: {free / 1024**3:.0f} GiB free ({pct:.0f} %)",
                           [], "" if sev == "ok" else "free space: thin disks and the pods' volumes grow; a full datastore stops the VMs"))
    if not any(f.severity != "ok" for f in out):
        out.append(Finding("vsphere", "vms", "ok", f"all {len(nodes)} VMs present, powered on, VMware Tools running"))
    return out
