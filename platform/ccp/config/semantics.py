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
    spec = cfg.spec
    out: list[Problem] = []
    add = lambda path, msg, hint="": out.append(Problem(("spec",) + path, msg, hint))  # noqa: E731

    # Kubernetes version and the control plane size etcd can live with.
    if spec.kubernetes.minor not in versions.supported_minors():
        add(("kubernetes", "version"),
            f"Kubernetes {spec.kubernetes.version} is not supported",
            f"use one of the supported minors: {', '.join(versions.supported_minors())} (e.g. \"{versions.default_version()}\")")
    out.extend(_custom_build(cfg))
    static = spec.provisioner == "static"
    if static:
        out.extend(_static_hosts(cfg))
        cp = sum(1 for h in spec.hosts if h.role == "control-plane")
    else:
        cp = spec.nodes.controlPlane.count
        if cp == 0 or cp % 2 == 0:
            add(("nodes", "controlPlane", "count"),
                f"control-plane count {cp} cannot hold an etcd quorum",
                "use an odd number: 1 for a lab, 3 or 5 for production")
        if spec.hosts:
            add(("hosts",), "hosts lists existing machines, which only provisioner: static uses",
                "set provisioner: static, or remove hosts")
    if spec.provisioner == "local" and spec.nodes.network.interface != "host0":
        add(("nodes", "network", "interface"), f"a local machine's interface is host0, not {spec.nodes.network.interface}",
            "set nodes.network.interface: host0 (systemd-nspawn names it so)")
    if spec.vsphere is None:
        if not static and spec.provisioner != "local":
            add(("vsphere",), f"provisioner {spec.provisioner} needs the vsphere section",
                "add spec.vsphere (server, username, password, datacenter, ...), or use provisioner: static or local")
        if spec.addons.storage.provider == "vsphere-csi":
            add(("addons", "storage", "provider"), "vsphere-csi needs the vsphere section",
                "add spec.vsphere, or use provider: local-path")

    # Networks must not overlap.
    nets = [(("kubernetes", "podCIDR"), "podCIDR", spec.kubernetes.podCIDR),
            (("kubernetes", "serviceCIDR"), "serviceCIDR", spec.kubernetes.serviceCIDR),
            (("nodes", "network", "cidr"), "node network", spec.nodes.network.cidr)]
    for i, (_, name_a, a) in enumerate(nets):
        for path_b, name_b, b in nets[i + 1:]:
            if a.overlaps(b):
                add(path_b, f"{name_b} {b} overlaps {name_a} {a}",
                    f"pick a {name_b} that shares no address with the {name_a}")

    # Node network: range inside the CIDR, gateway and VIP inside the CIDR but outside the range.
    net = spec.nodes.network
    rng_path = ("nodes", "network", "addresses")
    range_ok = net.addresses is not None
    if not range_ok and not static:
        add(rng_path, "the node address range is missing", "add addresses: FIRST-LAST inside the node network")
    first, last = net.address_range() if range_ok else (None, None)
    if range_ok and int(last) < int(first):
        add(rng_path, f"address range {net.addresses} ends before it starts", "write it as FIRST-LAST")
        range_ok = False
    elif range_ok and (first not in net.cidr or last not in net.cidr):
        add(rng_path, f"address range {net.addresses} is not inside the node network {net.cidr}",
            f"choose addresses between {net.cidr.network_address + 1} and {net.cidr.broadcast_address - 1}")
        range_ok = False
    elif range_ok and (first == net.cidr.network_address or last == net.cidr.broadcast_address):
        add(rng_path, f"address range {net.addresses} includes the network or broadcast address of {net.cidr}",
            "leave the first and last address of the network out of the range")
        range_ok = False

    def in_range(ip) -> bool:
        return range_ok and int(first) <= int(ip) <= int(last)

    for path, label, ip in ((("nodes", "network", "gateway"), "gateway", net.gateway),
                            (("loadBalancer", "vip"), "VIP", spec.loadBalancer.vip)):
        if ip not in net.cidr:
            add(path, f"{label} {ip} is outside the node network {net.cidr}",
                f"choose a {label} inside {net.cidr}")
        elif in_range(ip):
            add(path, f"{label} {ip} is inside the node address range {net.addresses}",
                f"choose a {label} outside the range, or shrink the range")
    if spec.loadBalancer.vip == net.gateway:
        add(("loadBalancer", "vip"), f"VIP {spec.loadBalancer.vip} is the gateway's address", "choose a free address")

    if range_ok and not static:
        need, have = inventory.required_addresses(cfg), inventory.range_size(cfg)
        if need > have:
            lb = spec.loadBalancer.nginx.count
            workers = sum(p.count for p in spec.nodes.workers)
            add(rng_path, f"address range {net.addresses} holds {have} addresses but the cluster needs {need} "
                          f"({cp} control plane + {workers} worker + {lb} load balancer)",
                f"widen the range to at least {need} addresses or reduce node counts")

    # Worker pools.
    seen: dict[str, int] = {}
    for i, pool in enumerate(spec.nodes.workers):
        if pool.name in seen:
            add(("nodes", "workers", i, "name"), f"worker pool name {pool.name!r} is used twice",
                "give every worker pool its own name")
        seen.setdefault(pool.name, i)
    if spec.nodes.workers and not any(p.count for p in spec.nodes.workers):
        out.append(Problem(("spec", "nodes", "workers"), "every worker pool has count 0: workloads will run on the control planes", warning=True))

    # Validation needs two schedulable nodes for the cross-node re-attach check.
    if spec.validation.pvc.enabled and spec.validation.pvc.crossNode:
        workers = (sum(1 for h in spec.hosts if h.role == "worker") if static
                   else sum(p.count for p in spec.nodes.workers))
        if workers < 2:
            out.append(Problem(("spec", "validation", "pvc", "crossNode"),
                               f"crossNode needs two worker nodes; with {workers} the cross-node part will be skipped",
                               warning=True))
    if spec.vsphere and spec.vsphere.insecure and (spec.vsphere.caFile or spec.vsphere.thumbprint):
        add(("vsphere", "insecure"), "insecure: true contradicts caFile/thumbprint",
            "drop insecure to verify with the CA file or thumbprint, or drop those to skip verification")
    # The audit log must not fill the control planes' disks (ccp sizes them on vSphere).
    audit = spec.security.audit
    disk_mb = spec.nodes.controlPlane.diskGiB * 1024
    if audit.enabled and spec.provisioner in ("terraform", "native") and audit.budget_mb > disk_mb // 4:
        add(("security", "audit", "maxSizeMB"),
            f"the audit log may take {audit.budget_mb} MB (maxSizeMB x (maxBackups + 1)), more than a quarter of a "
            f"control plane's {spec.nodes.controlPlane.diskGiB} GiB disk",
            "lower maxSizeMB or maxBackups, or give the control planes a larger disk (nodes.controlPlane.diskGiB)")
    return out


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
