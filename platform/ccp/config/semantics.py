"""Checks that span several fields. Each problem names the one field the user should change."""

from __future__ import annotations

from dataclasses import dataclass

from ccp.config import inventory, versions
from ccp.config.model import ClusterConfig


@dataclass(frozen=True)
class Problem:
    path: tuple[str | int, ...]
    message: str
    hint: str = ""
    warning: bool = False


def check(cfg: ClusterConfig) -> list[Problem]:
    """Every problem that spans fields, in the order cluster.yaml reads: version, machines, networks,
    workers, validation, vSphere, security."""
    out: list[Problem] = []
    for part in (_version, _custom_build, _control_planes, _local_interface, _vsphere_section, _network_overlaps,
                 _node_address_range, _gateway_and_vip, _enough_addresses, _worker_pools, _cross_node_validation,
                 _vsphere_verification, _audit_log_size):
        out.extend(part(cfg))
    return out


def _problem(path: tuple[str | int, ...], message: str, hint: str = "", *, warning: bool = False) -> Problem:
    return Problem(("spec",) + path, message, hint, warning)


def _version(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    if spec.kubernetes.minor in versions.supported_minors():
        return []
    return [_problem(("kubernetes", "version"), f"Kubernetes {spec.kubernetes.version} is not supported",
                     f"use one of the supported minors: {', '.join(versions.supported_minors())} "
                     f"(e.g. \"{versions.default_version()}\")")]


def _control_planes(cfg: ClusterConfig) -> list[Problem]:
    """A control plane size etcd can live with; hosts only where they are used."""
    spec = cfg.spec
    if spec.provisioner == "static":
        return _static_hosts(cfg)
    out = []
    cp = spec.nodes.controlPlane.count
    if cp == 0 or cp % 2 == 0:
        out.append(_problem(("nodes", "controlPlane", "count"), f"control-plane count {cp} cannot hold an etcd quorum",
                            "use an odd number: 1 for a lab, 3 or 5 for production"))
    if spec.hosts:
        out.append(_problem(("hosts",), "hosts lists existing machines, which only provisioner: static uses",
                            "set provisioner: static, or remove hosts"))
    return out


def _local_interface(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    if spec.provisioner != "local" or spec.nodes.network.interface == "host0":
        return []
    return [_problem(("nodes", "network", "interface"), f"a local machine's interface is host0, not {spec.nodes.network.interface}",
                     "set nodes.network.interface: host0 (systemd-nspawn names it so)")]


def _vsphere_section(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    if spec.vsphere is not None:
        return []
    out = []
    if spec.provisioner not in ("static", "local"):
        out.append(_problem(("vsphere",), f"provisioner {spec.provisioner} needs the vsphere section",
                            "add spec.vsphere (server, username, password, datacenter, ...), or use provisioner: static or local"))
    if spec.addons.storage.provider == "vsphere-csi":
        out.append(_problem(("addons", "storage", "provider"), "vsphere-csi needs the vsphere section",
                            "add spec.vsphere, or use provider: local-path"))
    return out


def _network_overlaps(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    nets = [(("kubernetes", "podCIDR"), "podCIDR", spec.kubernetes.podCIDR),
            (("kubernetes", "serviceCIDR"), "serviceCIDR", spec.kubernetes.serviceCIDR),
            (("nodes", "network", "cidr"), "node network", spec.nodes.network.cidr)]
    out = []
    for i, (_, name_a, a) in enumerate(nets):
        for path_b, name_b, b in nets[i + 1:]:
            if a.overlaps(b):
                out.append(_problem(path_b, f"{name_b} {b} overlaps {name_a} {a}",
                                    f"pick a {name_b} that shares no address with the {name_a}"))
    return out


_RANGE_PATH = ("nodes", "network", "addresses")


def _range_fault(net) -> tuple[str, str] | None:
    """What is wrong with a given node address range (message, hint), or None: it lies inside the
    node network, ends after it starts, and leaves out the network and broadcast addresses."""
    first, last = net.address_range()
    if int(last) < int(first):
        return f"address range {net.addresses} ends before it starts", "write it as FIRST-LAST"
    if first not in net.cidr or last not in net.cidr:
        return (f"address range {net.addresses} is not inside the node network {net.cidr}",
                f"choose addresses between {net.cidr.network_address + 1} and {net.cidr.broadcast_address - 1}")
    if first == net.cidr.network_address or last == net.cidr.broadcast_address:
        return (f"address range {net.addresses} includes the network or broadcast address of {net.cidr}",
                "leave the first and last address of the network out of the range")
    return None


def _usable_range(net):
    """(first, last) of a node address range with no fault, else None (the checks after it skip it)."""
    return net.address_range() if net.addresses is not None and _range_fault(net) is None else None


def _node_address_range(cfg: ClusterConfig) -> list[Problem]:
    net = cfg.spec.nodes.network
    if net.addresses is None:   # static hosts bring their own addresses
        return [] if cfg.spec.provisioner == "static" else [
            _problem(_RANGE_PATH, "the node address range is missing", "add addresses: FIRST-LAST inside the node network")]
    fault = _range_fault(net)
    return [_problem(_RANGE_PATH, *fault)] if fault else []


def _gateway_and_vip(cfg: ClusterConfig) -> list[Problem]:
    """Gateway and VIP inside the node network, outside the range the nodes take, and not the same address."""
    spec = cfg.spec
    net = spec.nodes.network
    usable = _usable_range(net)
    out = []
    for path, label, ip in ((("nodes", "network", "gateway"), "gateway", net.gateway),
                            (("loadBalancer", "vip"), "VIP", spec.loadBalancer.vip)):
        if ip not in net.cidr:
            out.append(_problem(path, f"{label} {ip} is outside the node network {net.cidr}",
                                f"choose a {label} inside {net.cidr}"))
        elif usable and int(usable[0]) <= int(ip) <= int(usable[1]):
            out.append(_problem(path, f"{label} {ip} is inside the node address range {net.addresses}",
                                f"choose a {label} outside the range, or shrink the range"))
    if spec.loadBalancer.vip == net.gateway:
        out.append(_problem(("loadBalancer", "vip"), f"VIP {spec.loadBalancer.vip} is the gateway's address",
                            "choose a free address"))
    return out


def _enough_addresses(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    if spec.provisioner == "static" or _usable_range(spec.nodes.network) is None:
        return []
    # what cluster.yaml pins inside the range (a DNS server, the bastion) is no node's to take; a VIP or
    # gateway there is a problem of its own (_gateway_and_vip)
    pins = [ip for ip in inventory.pinned_in_range(cfg) if ip not in (spec.loadBalancer.vip, spec.nodes.network.gateway)]
    need, have = inventory.required_addresses(cfg), inventory.range_size(cfg) - len(pins)
    if need <= have:
        return []
    cp, lb = spec.nodes.controlPlane.count, spec.loadBalancer.nginx.count
    workers = sum(p.count for p in spec.nodes.workers)
    held = f" free for nodes ({', '.join(map(str, pins))} pinned by cluster.yaml)" if pins else ""
    return [_problem(_RANGE_PATH, f"address range {spec.nodes.network.addresses} holds {have} addresses{held} but the "
                                  f"cluster needs {need} ({cp} control plane + {workers} worker + {lb} load balancer)",
                     f"widen the range to at least {need + len(pins)} addresses or reduce node counts")]


def _worker_pools(cfg: ClusterConfig) -> list[Problem]:
    workers = cfg.spec.nodes.workers
    out = []
    seen: dict[str, int] = {}
    for i, pool in enumerate(workers):
        if pool.name in seen:
            out.append(_problem(("nodes", "workers", i, "name"), f"worker pool name {pool.name!r} is used twice",
                                "give every worker pool its own name"))
        seen.setdefault(pool.name, i)
    if workers and not any(p.count for p in workers):
        out.append(_problem(("nodes", "workers"), "every worker pool has count 0: workloads will run on the control planes",
                            warning=True))
    return out


def _cross_node_validation(cfg: ClusterConfig) -> list[Problem]:
    """Validation needs two schedulable nodes for the cross-node re-attach check."""
    spec = cfg.spec
    if not (spec.validation.pvc.enabled and spec.validation.pvc.crossNode):
        return []
    workers = (sum(1 for h in spec.hosts if h.role == "worker") if spec.provisioner == "static"
               else sum(p.count for p in spec.nodes.workers))
    if workers >= 2:
        return []
    return [_problem(("validation", "pvc", "crossNode"),
                     f"crossNode needs two worker nodes; with {workers} the cross-node part will be skipped", warning=True)]


def _vsphere_verification(cfg: ClusterConfig) -> list[Problem]:
    vs = cfg.spec.vsphere
    if not (vs and vs.insecure and (vs.caFile or vs.thumbprint)):
        return []
    return [_problem(("vsphere", "insecure"), "insecure: true contradicts caFile/thumbprint",
                     "drop insecure to verify with the CA file or thumbprint, or drop those to skip verification")]


def _audit_log_size(cfg: ClusterConfig) -> list[Problem]:
    """The audit log must not fill the control planes' disks (ccp sizes them on vSphere)."""
    spec = cfg.spec
    audit = spec.security.audit
    disk_mb = spec.nodes.controlPlane.diskGiB * 1024
    if not (audit.enabled and spec.provisioner in ("terraform", "native") and audit.budget_mb > disk_mb // 4):
        return []
    return [_problem(("security", "audit", "maxSizeMB"),
                     f"the audit log may take {audit.budget_mb} MB (maxSizeMB x (maxBackups + 1)), more than a quarter of a "
                     f"control plane's {spec.nodes.controlPlane.diskGiB} GiB disk",
                     "lower maxSizeMB or maxBackups, or give the control planes a larger disk (nodes.controlPlane.diskGiB)")]


def _static_hosts(cfg: ClusterConfig) -> list[Problem]:
    spec = cfg.spec
    out: list[Problem] = []
    if not spec.hosts:
        return [Problem(("spec", "hosts"), "provisioner: static needs the machines listed in hosts",
                        "add hosts: - {address: 10.0.0.11, role: control-plane} ...")]
    cps = sum(1 for h in spec.hosts if h.role == "control-plane")
    if cps == 0 or cps % 2 == 0:
        out.append(Problem(("spec", "hosts"), f"hosts has {cps} control-plane machines; etcd needs an odd number",
                           "list 1, 3 or 5 machines with role: control-plane"))
    seen_addr: dict = {}
    seen_name: dict = {}
    for i, h in enumerate(spec.hosts):
        if h.address in seen_addr:
            out.append(Problem(("spec", "hosts", i, "address"), f"address {h.address} is listed twice",
                               "give each machine its own address"))
        seen_addr.setdefault(h.address, i)
        if h.name and h.name in seen_name:
            out.append(Problem(("spec", "hosts", i, "name"), f"name {h.name!r} is listed twice", "give each machine its own name"))
        if h.name:
            seen_name.setdefault(h.name, i)
        if h.address == spec.loadBalancer.vip:
            out.append(Problem(("spec", "hosts", i, "address"), f"address {h.address} is the API VIP",
                               "the VIP must be a free address that keepalived can claim"))
        if h.address not in spec.nodes.network.cidr:
            out.append(Problem(("spec", "hosts", i, "address"), f"{h.address} is outside the node network {spec.nodes.network.cidr}",
                               "keepalived can only move the VIP within one network", warning=True))
    if spec.loadBalancer.nginx.count and not any(h.role == "loadbalancer" for h in spec.hosts):
        out.append(Problem(("spec", "loadBalancer", "nginx", "count"),
                           "with provisioner: static the load balancers are the hosts with role: loadbalancer; none is listed, "
                           "so keepalived will run on the control planes", warning=True))
    return out


def _custom_build(cfg: ClusterConfig) -> list[Problem]:
    """A pre-release or custom build needs its own bill of materials, and that must agree with the config."""
    k8s = cfg.spec.kubernetes
    path = ("spec", "kubernetes")
    if not k8s.billOfMaterials:
        if "-" in k8s.version:
            return [Problem(path + ("version",), f"{k8s.version} is a pre-release, which ccp's bill of materials does not list",
                            "give its images and packages in kubernetes.billOfMaterials (see examples/lab/bom.yaml), "
                            "or use a released version")]
        return []
    bom = versions.bom_of(cfg)
    out = []
    if bom.kubernetes != k8s.version:
        out.append(Problem(path + ("version",), f"the bill of materials {bom.source} is for Kubernetes {bom.kubernetes}, not {k8s.version}",
                           f'set version: "{bom.kubernetes}", or point billOfMaterials at the one for {k8s.version}'))
    skipped = set(k8s.kubeadm.skipPhases)
    if not bom.coredns and not skipped & {"addon", "addon/coredns"}:
        out.append(Problem(path + ("kubeadm", "skipPhases"), f"the bill of materials {bom.source} has no CoreDNS image, "
                           "so kubeadm's addon/coredns phase would fail", "add addon/coredns to kubernetes.kubeadm.skipPhases"))
    return out
