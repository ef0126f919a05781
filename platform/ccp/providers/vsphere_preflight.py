"""The vSphere preflight checks: each named, each pass / warn / fail with what to do, all run even
when one fails, so the user sees every problem at once. Reads go through the PropertyCollector."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ccp.errors import CcpError
from ccp.providers import vsphere_session as vs_session
from ccp.providers.base import OWNER_KEY

CHECKS = ["connect", "vsphere-version", "datacenter", "cluster", "resource-pool", "datastore", "network",
          "folder", "template", "datastore-space", "cluster-capacity", "template-guestinfo", "name-conflicts",
          "address-conflicts"]
MIN_API = (7, 0)


@dataclass
class CheckResult:
    name: str
    status: str        # pass | warn | fail | skipped | ignored
    message: str
    remediation: str = ""


def run_checks(provider, ignore: set[str]) -> list[CheckResult]:

    cfg, vs = provider.cfg, provider.vs
    results: list[CheckResult] = []

    def add(name, status, message, remediation=""):
        if name in ignore and status in ("fail", "warn"):
            status, message = "ignored", f"{message} (ignored: --ignore-preflight {name})"
        results.append(CheckResult(name, status, message, remediation))

    def skip_rest(after: str, why: str) -> list[CheckResult]:
        for name in CHECKS[CHECKS.index(after) + 1:]:
            add(name, "skipped", why)
        return results

    try:
        session = provider.session
    except CcpError as exc:
        add("connect", "fail", exc.message, exc.resolution)
        return skip_rest("connect", "cannot connect")
    about = session.content.about
    tls = "TLS not verified (insecure: true)" if vs.insecure else "TLS verified"
    add("connect", "pass", f"{vs.username} on {about.fullName} at {vs.server}; {tls}",
        "" if not vs.insecure else "set caFile or thumbprint to verify vCenter's certificate")
    try:
        api = tuple(int(x) for x in about.apiVersion.split(".")[:2])
    except ValueError:
        api = (0, 0)
    if api < MIN_API:
        add("vsphere-version", "fail", f"vSphere API {about.apiVersion} is older than {MIN_API[0]}.{MIN_API[1]}",
            "upgrade vCenter to 7.0 or newer")
    else:
        add("vsphere-version", "pass", f"{about.apiType} API {about.apiVersion}")

    pl = provider.placement()
    for name, key in (("datacenter", "datacenter"), ("cluster", "cluster"), ("resource-pool", "resource-pool"),
                      ("datastore", "datastore"), ("network", "network"), ("folder", "folder"), ("template", "template")):
        miss = pl.missing.get(key)
        if miss and name == "folder":
            dc = vs.datacenter
            add(name, "fail", str(miss), f"create it (`govc folder.create /{dc}/vm/{vs.folder.strip('/')}`, or in the vSphere "
                f"Client: VMs and Templates > {dc} > New Folder), or fix vsphere.folder in cluster.yaml")
        elif miss:
            add(name, "fail", str(miss), f"fix vsphere.{_field(name)} in cluster.yaml")
        elif pl.datacenter is None:
            add(name, "skipped", "no datacenter")
        else:
            add(name, "pass", _described(name, vs))
    if pl.datacenter is None:
        return skip_rest("template", "no datacenter")

    nodes = provider.nodes   # the context's: existing nodes with the addresses recorded for them
    observed = provider.observe()
    existing = {n for n, vm in observed.items() if vm.owner == cfg.metadata.name}
    _space(add, provider, pl, [n for n in nodes if n.name not in existing], len(existing))
    _capacity(add, provider, pl, nodes)
    _template(add, provider, pl)
    _conflicts(add, provider, nodes, observed)
    return results


def _field(check: str) -> str:
    return {"resource-pool": "resourcePool"}.get(check, check)


def _described(check: str, vs) -> str:
    if check == "resource-pool":
        return f"resource pool {vs.resourcePool or '(the cluster root pool)'}"
    return f"{check} {getattr(vs, _field(check))!r}"


def _space(add, provider, pl, to_create, existing: int) -> None:
    """Only the disks still to be created need room: the cluster's existing VMs already have theirs."""
    from pyVmomi import vim

    if pl.datastore is None:
        return add("datastore-space", "skipped", "no datastore")
    p = vs_session.retrieve(provider.session, [pl.datastore], vim.Datastore, ["summary.freeSpace", "summary.capacity"])[pl.datastore]
    need = int(sum(n.diskGiB for n in to_create) * 1.1 * 1024**3)
    free = p.get("summary.freeSpace", 0)
    have = f"; {existing} VMs of the cluster exist already" if existing else ""
    msg = (f"{free / 1024**3:.0f} GiB free, {need / 1024**3:.0f} GiB needed for {len(to_create)} new VMs "
           f"(their disks + 10 %){have}")
    if free < need:
        add("datastore-space", "fail", msg, "free space on the datastore, choose another, or make node disks smaller")
    else:
        add("datastore-space", "pass", msg)


def _capacity(add, provider, pl, nodes) -> None:
    from pyVmomi import vim

    if pl.cluster is None:
        return add("cluster-capacity", "skipped", "no cluster")
    s = vs_session.retrieve(provider.session, [pl.cluster], vim.ComputeResource, ["summary"])[pl.cluster]["summary"]
    mem_need = sum(n.memoryMiB for n in nodes)
    total_mib = (s.totalMemory or 0) // 2**20                 # bytes, per the API
    # effectiveMemory is MB per the API (vcsim fills in bytes): trust it only when it is plausible
    mem_have = s.effectiveMemory if s.effectiveMemory and s.effectiveMemory <= total_mib else total_mib
    vcpus = sum(n.cpus for n in nodes)
    cores = s.numCpuCores or 0
    msg = f"{mem_need} MiB of {mem_have} MiB memory, {vcpus} vCPUs on {cores} cores"
    # vSphere overcommits memory and CPU; ccp reserves neither, so nothing here can make a power-on fail:
    # too little is a warning with the ratio, not a failure.
    if mem_need > mem_have:
        ratio = mem_need / mem_have if mem_have else float("inf")
        add("cluster-capacity", "warn", f"{msg}: memory overcommitted {ratio:.1f}x",
            "vSphere will balloon and swap under load: add hosts or memory, or make the nodes smaller")
    elif mem_need > 0.8 * mem_have or vcpus > 4 * cores:
        add("cluster-capacity", "warn", msg + " (little headroom)", "expect contention; consider smaller nodes or more hosts")
    else:
        add("cluster-capacity", "pass", msg)


def _template(add, provider, pl) -> None:
    from pyVmomi import vim

    if pl.template is None:
        return add("template-guestinfo", "skipped", "no template")
    p = vs_session.retrieve(provider.session, [pl.template], vim.VirtualMachine,
                            ["config.annotation", "config.extraConfig", "guest.toolsVersionStatus2"])[pl.template]
    text = (p.get("config.annotation") or "").lower()
    keys = {o.key for o in p.get("config.extraConfig") or []}
    if "cloud-init" in text or "guestinfo" in text or any(k.startswith("guestinfo.") for k in keys):
        add("template-guestinfo", "pass", "the template declares cloud-init / guestinfo support")
    else:
        add("template-guestinfo", "warn",
            f"cannot tell whether the template runs cloud-init with the VMware datasource (tools: {p.get('guest.toolsVersionStatus2', 'unknown')})",
            "use a template with cloud-init and VMware Tools, and note 'cloud-init' in its annotation")


def _conflicts(add, provider, nodes, observed) -> None:
    cluster = provider.cfg.metadata.name
    strangers = [n.name for n in nodes if n.name in observed and observed[n.name].owner != cluster]
    if strangers:
        add("name-conflicts", "fail", f"VMs not created by ccp for cluster {cluster} use its names: {', '.join(strangers)}",
            f"ccp never adopts a stranger's VM: rename or remove them, or change metadata.name (ownership: extraConfig {OWNER_KEY})")
    else:
        mine = sum(1 for vm in observed.values() if vm.owner == cluster)
        add("name-conflicts", "pass", f"no foreign VM uses this cluster's names ({mine} VMs already belong to it)")
    from pyVmomi import vim

    ours = {n.address for n in nodes}
    dc = provider.placement().datacenter
    root = vs_session.retrieve(provider.session, [dc], vim.Datacenter, ["vmFolder"])[dc]["vmFolder"]
    ips = vs_session.retrieve_all(provider.session, root, vim.VirtualMachine, ["name", "guest.ipAddress"])
    clashes = []
    for p in ips.values():
        try:
            ip = ipaddress.IPv4Address(p.get("guest.ipAddress") or "")
        except ValueError:
            continue
        vm = observed.get(p["name"])
        if ip in ours and not (vm is not None and vm.owner == cluster):
            clashes.append(f"{p['name']} ({ip})")
    if clashes:
        add("address-conflicts", "warn", f"other VMs report addresses this cluster will use: {', '.join(sorted(clashes))}",
            "choose a free nodes.network.addresses range")
    else:
        add("address-conflicts", "pass", "no other VM reports an address from this cluster's range")
