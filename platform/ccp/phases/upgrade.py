"""The phases of `ccp upgrade`, one per step of its plan (ccp.upgrade.plan says the order and the
batches, workflows.upgrade makes the list): preflight, backup, the stage step of an air-gapped
cluster, each control plane, each worker batch,
then the install's add-ons and validate phases again at the target version (AtTarget).

Every phase is named after its step, upgrade/<target>/<kind>/<first node or ->, so a resumed upgrade
finds its journal; a phase the engine resumes probes what is left: the nodes of a batch are journaled
one by one (upgrade/<target>/node/<name>) the moment each is Ready at the target."""

from __future__ import annotations

from ccp import render as rendering
from ccp.cluster import facts
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import KubernetesError
from ccp.upgrade.plan import node_key


class _Step(Phase):
    layer = "upgrade"

    def __init__(self, step, target: str, bill_of_materials: str | None = None):
        self.name, self.kind, self.nodes, self.detail, self.target = step.key, step.kind, step.nodes, step.detail, target
        self.bom = bill_of_materials   # the target's own, for a cluster with a bill of materials of its own
        self.summary = f"{step.kind} {', '.join(step.nodes)}".strip()

    def target_config(self, ctx: ClusterContext):
        from ccp.config.versions import retarget

        return retarget(ctx.config, self.target, self.bom)

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"target": self.target, "nodes": self.nodes}

    def passed(self, ctx: ClusterContext) -> bool:
        """Done once in this upgrade of this cluster (what it recorded is recalled from the journal): the
        preflight and the backup are about the cluster before it changed, and are not repeated on a resume,
        when half of the cluster may be upgraded already. The record names the cluster (its kube-system
        UID): one destroyed and made anew under the same names is checked and backed up again."""
        recorded = ctx.outputs.get(self.name)
        if not recorded:
            return False
        port = facts.nodes_port(ctx)
        # a record from before ccp kept the cluster's identity is taken as it is; no kubeconfig: the node
        # steps stop on it anyway
        return "cluster" not in recorded or port is None or port.cluster_uid() == recorded["cluster"]

    @staticmethod
    def identity(ctx: ClusterContext) -> dict:
        port = facts.nodes_port(ctx)
        return {"cluster": port.cluster_uid()} if port is not None else {}


class UpgradePreflight(_Step):
    def plan(self, ctx: ClusterContext) -> list[Action]:
        return [] if self.passed(ctx) else [Action("check", "the cluster", self.detail)]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp import ui
        from ccp.upgrade import flow

        warnings = flow.preflight(ctx, self.target, say=ctx.reporter.progress)
        for w in warnings:
            ui.warn(w)
        return {"target": self.target, "warnings": warnings, **self.identity(ctx)}


class UpgradeBackup(_Step):
    def plan(self, ctx: ClusterContext) -> list[Action]:
        return [] if self.passed(ctx) else [Action("write", "etcd snapshot and PKI", self.detail)]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.backup.snapshot import backup

        return {"backup": str(backup(ctx, say=ctx.reporter.note)), **self.identity(ctx)}


class UpgradeStage(_Step):
    """Air-gapped: the target's packages and images onto every node before any node changes."""

    def plan(self, ctx: ClusterContext) -> list[Action]:
        # the reason once: the progress line lists every action
        if not self.passed(ctx):
            return [Action("stage", f"node {n}", "" if i else self.detail) for i, n in enumerate(self.nodes)]
        # staged for this cluster before: the packages wait on each node until the upgrade ends (the node script
        # installs from there), so a node without them is staged again. Found on real nodes: a journal that said
        # staged, nodes that had none, and kubeadm's step failed on the first control plane.
        from ccp.upgrade.stage import packages_dir

        ssh = ctx.ssh()
        probe = f"test -n \"$(ls -A {packages_dir(self.target)} 2>/dev/null)\""

        async def holds(t):
            return (await ssh.run(t, probe, sudo=True, check=False)).ok
        fan = ssh.call(ssh.each(ctx.targets(self.nodes), holds))
        fan.raise_if_failed("probing the staged packages")
        return [Action("stage", f"node {n}", "staged before, but its packages are not there") for n in self.nodes
                if not fan.results[n]]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.upgrade.stage import stage

        staged = stage(ctx, self.target_config(ctx), [a.target.removeprefix("node ") for a in actions],
                       say=ctx.reporter.progress)
        return {"staged": staged, **self.identity(ctx)}


class UpgradeNodes(_Step):
    """A control plane, or a batch of workers (the canary first)."""

    def plan(self, ctx: ClusterContext) -> list[Action]:
        """The nodes not journaled at the target, and those journaled whose kubelet is not at the target
        now: the journal's word is checked against the cluster (one node read each), never taken alone,
        for a node can be made again under its name (a cluster destroyed and installed anew)."""
        done = set((ctx.outputs.get(self.name) or {}).get("nodes", []))
        recorded = [n for n in self.nodes if n in done or ctx.outputs.get(node_key(self.target, n))]
        port = facts.nodes_port(ctx) if recorded else None   # none: apply says the kubeconfig is missing
        actions = []
        for n in self.nodes:
            detail = self.detail
            if n in recorded and port is not None:
                kubelet = port.node_state(n)[1]
                if kubelet == f"v{self.target}":
                    continue
                detail = f"journaled at v{self.target}, but its kubelet is {kubelet or 'unknown'}: a node made anew"
            actions.append(Action("upgrade", f"node {n}", detail))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.upgrade import nodes

        todo = [a.target.removeprefix("node ") for a in actions]
        port = facts.nodes_port(ctx)
        if todo and port is None:
            raise KubernetesError(f"cluster {ctx.config.metadata.name} has no kubeconfig ({facts.kubeconfig_path(ctx)})",
                                  "the install writes it (its kubeconfig phase): finish it first")
        # each node upgraded is as hosts/prepare would leave it at the target: the stamp says so, or the
        # next `ccp apply` (a scale-out, say) would prepare every node again
        at_target = ctx.at_version(self.target, self.bom)
        stamps = {n: rendering.script_hash(at_target.rendered.files[f"scripts/{n}/prepare-node.sh"]) for n in todo}
        nodes.upgrade(ctx, self.kind, todo, self.target_config(ctx), port, say=ctx.reporter.progress, stamps=stamps,
                      node_done=lambda n: ctx.record_part(node_key(self.target, n), {"version": self.target}))
        return {"nodes": self.nodes}


class AtTarget(Phase):
    """An install phase run again at the target version, under the upgrade's name for its step: the
    add-ons from the target's bill of materials (a changed add-on is applied, a current one left
    alone), then the validation gate. Journaled like every other phase."""

    def __init__(self, phase: Phase, step, target: str, bill_of_materials: str | None = None):
        self.phase, self.name, self.target, self.bom = phase, step.key, target, bill_of_materials
        self.layer, self.summary, self.always = phase.layer, phase.summary, phase.always
        self._at: tuple[ClusterContext, ClusterContext] | None = None

    def _ctx(self, ctx: ClusterContext) -> ClusterContext:
        """One context at the target for this run: its rendered add-ons are computed once, plan to apply."""
        if self._at is None or self._at[0] is not ctx:
            self._at = (ctx, ctx.at_version(self.target, self.bom))
        return self._at[1]

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"target": self.target, **self.phase.inputs(self._ctx(ctx))}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        return self.phase.plan(self._ctx(ctx))

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        return self.phase.apply(self._ctx(ctx), actions)
