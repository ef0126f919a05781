"""replace/remove and replace/machine: `ccp node replace NAME` for a broken node.

The node leaves the cluster exactly as a scaled-down one does (nodes/remove: drain, etcd member
first for a control plane, kubeadm reset when it answers, the Node object deleted), then its machine
is made new: the VM destroyed (native: the provision phase creates it again) or replaced in one
`terraform apply -replace`; a static host stays and is prepared again. The install workflow that
follows probes every phase, so only this node is created, prepared and joined — the first control
plane too: it joins the cluster another control plane holds (kubeadm/init runs only when none does).
"""

from __future__ import annotations

from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError
from ccp.phases.nodes_remove import RemoveNodes


def check_replaceable(ctx: ClusterContext, name: str) -> dict:
    """The node's recorded facts; a ConfigError for a node that is not there or cannot be replaced safely."""
    nodes = inventory.build(ctx.config)
    node = next((n for n in nodes if n.name == name), None)
    if node is None:
        raise ConfigError(f"there is no node {name} in this cluster",
                          f"the nodes are: {', '.join(n.name for n in nodes if n.role != inventory.ROLE_LB)}")
    if node.role == inventory.ROLE_LB:
        raise ConfigError(f"{name} is a load balancer, not a Kubernetes node",
                          "a load balancer is replaced by destroying its VM and running ccp install")
    cps = [n.name for n in nodes if n.role == inventory.ROLE_CP]
    if node.role == inventory.ROLE_CP and len(cps) == 1:
        raise ConfigError(f"{name} is the only control plane: replacing it would lose etcd",
                          "grow the control plane to 3 first (edit cluster.yaml, ccp install), or restore from a backup")
    recorded = ctx.outputs.get("provision", {}).get("nodes", {}).get(name)
    return recorded or {"role": node.role, "address": str(node.address)}


class ReplaceRemove(RemoveNodes):
    name = "replace/remove"
    summary = "take the node out of the cluster: drain, etcd member, kubeadm reset, Node object"
    why = "being replaced"

    def __init__(self, node: str):
        self.node = node

    def leaving(self, ctx: ClusterContext) -> dict[str, dict]:
        return {self.node: check_replaceable(ctx, self.node)}


class ReplaceMachine(Phase):
    name = "replace/machine"
    layer = "infrastructure"
    summary = "make the node's machine new (static hosts are kept and prepared again)"

    def __init__(self, node: str):
        self.node = node

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"node": self.node}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return ctx.provider().replace_plan([self.node])

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        return {"replaced": ctx.provider().replace([self.node])}
