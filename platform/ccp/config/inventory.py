"""The node inventory a ClusterConfig describes: names, roles, sizes and static addresses.

Nodes are listed in role order — load balancers, then control planes, then worker pools in the order
written. A fresh cluster's nodes take ``nodes.network.addresses`` in that order, so the same config
always gets the same addresses. Once a node's machine exists its address is recorded (the provision
phase's outputs) and the node keeps it: given those records, ``build`` hands new nodes the lowest free
addresses of the range, so growing any role (more control planes, say) moves no existing node, and a
removed node's address is free again once its machine is gone (its record dropped).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from ccp.config.model import ClusterConfig
from ccp.errors import ConfigError

ROLE_LB, ROLE_CP, ROLE_WORKER = "loadbalancer", "control-plane", "worker"


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    pool: str
    index: int
    address: ipaddress.IPv4Address
    cpus: int
    memoryMiB: int
    diskGiB: int

    @property
    def is_control_plane(self) -> bool:
        return self.role == ROLE_CP


_SHORT = {ROLE_LB: "lb", ROLE_CP: "cp", ROLE_WORKER: "worker"}


def required_addresses(cfg: ClusterConfig) -> int:
    n = cfg.spec.nodes
    return cfg.spec.loadBalancer.nginx.count + n.controlPlane.count + sum(p.count for p in n.workers)


def range_size(cfg: ClusterConfig) -> int:
    first, last = cfg.spec.nodes.network.address_range()
    return int(last) - int(first) + 1


def pinned(cfg: ClusterConfig) -> set[ipaddress.IPv4Address]:
    """Addresses cluster.yaml gives to something other than a node: the VIP, the gateway, the DNS servers
    and an SSH bastion written as an address. No node is handed one of them."""
    spec = cfg.spec
    out = {spec.loadBalancer.vip, spec.nodes.network.gateway, *spec.nodes.network.dns}
    if spec.ssh.bastion is not None:
        try:
            out.add(ipaddress.IPv4Address(spec.ssh.bastion.address))
        except ValueError:   # a host name
            pass
    return out


def pinned_in_range(cfg: ClusterConfig) -> list[ipaddress.IPv4Address]:
    """The pinned addresses inside the node address range (they cannot be given to nodes), in order."""
    first, last = cfg.spec.nodes.network.address_range()
    return sorted(ip for ip in pinned(cfg) if int(first) <= int(ip) <= int(last))


def _machines(cfg: ClusterConfig) -> list[tuple[str, str, int, object]]:
    """(role, pool, index, sizes) of every node, in role order."""
    spec = cfg.spec
    groups = [(ROLE_LB, "lb", spec.loadBalancer.nginx), (ROLE_CP, "cp", spec.nodes.controlPlane)] + \
        [(ROLE_WORKER, pool.name, pool) for pool in spec.nodes.workers]
    return [(role, pool, i, machine) for role, pool, machine in groups for i in range(1, machine.count + 1)]


def build(cfg: ClusterConfig, recorded: Mapping[str, str] | None = None) -> list[Node]:
    """All nodes in role order. Assumes semantics.check() passed (the range is big enough).

    ``recorded``: {node name: address} of the machines that exist (the last provision's record). A node
    listed there keeps its address; a recorded machine cluster.yaml no longer lists keeps its address
    taken until it is gone; every other node takes the lowest address of the range that no recorded
    machine holds and cluster.yaml does not pin. Without records this is the role-order assignment a
    fresh cluster always had. Static hosts bring their own addresses (records do not apply)."""
    spec = cfg.spec
    if spec.provisioner == "static":
        return _static(cfg)
    name = cfg.metadata.name
    kept = _addresses(recorded or {})
    first, last = spec.nodes.network.address_range()
    taken = {int(ip) for ip in kept.values()} | {int(ip) for ip in pinned(cfg)}
    nodes: list[Node] = []
    candidate = int(first)
    for role, pool, index, machine in _machines(cfg):
        node_name = f"{name}-{pool}-{index}"
        address = kept.get(node_name)
        if address is None:
            while candidate in taken:
                candidate += 1
            if candidate > int(last):
                raise _range_full(cfg, node_name, kept)
            address = ipaddress.IPv4Address(candidate)
            taken.add(candidate)
        nodes.append(Node(name=node_name, role=role, pool=pool, index=index, address=address, cpus=machine.cpus,
                          memoryMiB=machine.memoryMiB, diskGiB=machine.diskGiB))
    return nodes


def _addresses(recorded: Mapping[str, str]) -> dict[str, ipaddress.IPv4Address]:
    out = {}
    for node_name, address in recorded.items():
        try:
            out[node_name] = ipaddress.IPv4Address(address)
        except ValueError:   # no usable record: the node is treated as new
            continue
    return out


def _range_full(cfg: ClusterConfig, node_name: str, kept: Mapping[str, ipaddress.IPv4Address]) -> ConfigError:
    net = cfg.spec.nodes.network
    listed = {f"{cfg.metadata.name}-{pool}-{i}" for _, pool, i, _ in _machines(cfg)}
    keeping = sum(1 for n in kept if n in listed)
    leaving = len(kept) - keeping
    held = f"{keeping} existing node(s) keep their addresses" + (
        f", {leaving} removed node(s) hold theirs until their machines are deleted" if leaving else "")
    return ConfigError(f"the node address range {net.addresses} has no free address left for {node_name} ({held})",
                       "widen spec.nodes.network.addresses or add fewer nodes (a removed node's address is free "
                       "again once the run that removes it has deleted its machine)")


def api_endpoint(cfg: ClusterConfig) -> str:
    """host:port of the Kubernetes API: the VIP on the load balancers' port, or on 6443 when
    keepalived holds it on the control planes themselves (no NGINX in front)."""
    lb = cfg.spec.loadBalancer
    has_lbs = any(n.role == ROLE_LB for n in build(cfg))
    return f"{lb.vip}:{lb.port if has_lbs else 6443}"


def by_role(nodes: list[Node], role: str) -> list[Node]:
    return [n for n in nodes if n.role == role]


def _static(cfg: ClusterConfig) -> list[Node]:
    """Existing machines: names from spec.hosts or derived per role, in role order like VMs."""
    nodes: list[Node] = []
    for role in (ROLE_LB, ROLE_CP, ROLE_WORKER):
        for i, host in enumerate((h for h in cfg.spec.hosts if h.role == role), start=1):
            nodes.append(Node(name=host.name or f"{cfg.metadata.name}-{_SHORT[role]}-{i}", role=role,
                              pool=_SHORT[role] if role != ROLE_WORKER else "static", index=i,
                              address=host.address, cpus=0, memoryMiB=0, diskGiB=0))
    return nodes
