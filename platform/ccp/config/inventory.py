"""The node inventory a ClusterConfig describes: names, roles, sizes and static addresses.

Addresses are handed out from ``nodes.network.addresses`` in a fixed order — load balancers,
then control planes, then worker pools in the order written — so the same config always gets the
same addresses. Growing the last worker pool never moves an existing node.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ccp.config.model import ClusterConfig

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


def build(cfg: ClusterConfig) -> list[Node]:
    """All nodes in address order. Assumes semantics.check() passed (the range is big enough)."""
    spec = cfg.spec
    if spec.provisioner == "static":
        return _static(cfg)
    name = cfg.metadata.name
    first, _ = spec.nodes.network.address_range()
    groups = [
        (ROLE_LB, "lb", spec.loadBalancer.nginx),
        (ROLE_CP, "cp", spec.nodes.controlPlane),
    ] + [(ROLE_WORKER, pool.name, pool) for pool in spec.nodes.workers]
    nodes: list[Node] = []
    offset = 0
    for role, pool, machine in groups:
        for i in range(1, machine.count + 1):
            nodes.append(Node(
                name=f"{name}-{pool}-{i}", role=role, pool=pool, index=i,
                address=first + offset, cpus=machine.cpus, memoryMiB=machine.memoryMiB,
                diskGiB=machine.diskGiB,
            ))
            offset += 1
    return nodes


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
