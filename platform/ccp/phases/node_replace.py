"""replace/remove and replace/machine: `ccp node replace NAME` for a broken node.

The node leaves the cluster exactly as a scaled-down one does (replace/remove is nodes/remove for
this one node, so it lives in nodes_remove.py: drain, etcd member first for a control plane, kubeadm
reset when it answers, the Node object deleted), then its machine is made new: the VM destroyed
(native: the provision phase creates it again) or replaced in one `terraform apply -replace`; a
static host stays and is prepared again. The install workflow that follows probes every phase, so
only this node is created, prepared and joined — the first control plane too: it joins the cluster
another control plane holds (kubeadm/init runs only when none does).
"""

from __future__ import annotations

from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


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
