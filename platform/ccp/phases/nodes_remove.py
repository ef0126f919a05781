"""nodes/remove: the nodes that were part of the cluster and are gone from cluster.yaml leave it
safely, before the provision phase deletes their VMs.

Which nodes: the machines the last provision recorded that the config no longer has (scale-down of a
worker pool or of the control plane). For each, probed live: is its Node object still there, is it
still an etcd member? Then, one node at a time (a drain of several at once could break a
PodDisruptionBudget the one-by-one drain honours):
  worker        cordon + drain (the Eviction-API drain of `ccp upgrade`), kubeadm reset on it, delete the Node
  control plane the same, with its etcd member removed after the drain and before anything else,
                and only while every other member is healthy (quorum is never gambled)
A node that does not answer SSH (a broken one) is noted and the rest goes on: kubeadm reset is
cleanup, the etcd member and the Node object are what keep the cluster right. A rerun probes again,
so a kill at any point converges: nothing is removed twice, no etcd member is orphaned.

replace/remove (`ccp node replace NAME`, the rest of it in node_replace.py) is this phase for one named node.
"""

from __future__ import annotations

import json

from ccp.cluster import facts
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError, KubernetesError, PreflightError, RemoteError
from ccp.remote.etcd import CERTS, ETCD

MEMBERS = f"{ETCD} etcdctl {CERTS} member list -w json"
HEALTH = f"{ETCD} etcdctl {CERTS} endpoint health --cluster -w json"
RESET = "kubeadm reset -f --cleanup-tmp-dir; rm -rf /etc/cni/net.d /etc/ccp/prepared /etc/kubernetes/ccp"   # ccp: the encryption key


def removal_order(leaving: dict[str, dict]) -> list[str]:
    """Workers first, then control planes from the highest number down: each node all the way out before the next."""
    workers = sorted(n for n, rec in leaving.items() if rec.get("role") != inventory.ROLE_CP)
    return workers + sorted((n for n in leaving if n not in workers), reverse=True)


def first_control_plane(ctx: ClusterContext, leaving=()):
    """Where etcd is read and changed: a control plane of the running cluster that is not leaving it."""
    return ctx.targets([facts.acting_first(ctx, exclude=leaving)])[0]


def etcd_members(ctx: ClusterContext, leaving=()) -> dict[str, str]:
    """{member name: hex ID} read on a control plane that stays (kubeadm names members after their nodes)."""
    ssh = ctx.ssh()
    t = first_control_plane(ctx, leaving)
    r = ssh.call(ssh.run(t, MEMBERS, sudo=True, check=False, quiet=True))
    try:
        members = json.loads(r.stdout)["members"]
    except (ValueError, KeyError, TypeError):
        raise RemoteError(f"{t.name}: cannot list the etcd members (exit {r.exit_status})",
                          "check that etcd runs there: crictl ps --name etcd", (r.stderr or r.stdout).splitlines()[-3:]) from None
    return {m.get("name", ""): format(int(m["ID"]), "x") for m in members}


def staying_answer(ctx: ClusterContext, leaving: dict[str, dict], cps: list[str]) -> None:
    """A KubernetesError when a control plane that stays does not answer over SSH: its etcd member may be down
    too, and ccp could not read etcd through it (before: with one control plane's machine killed, replacing another
    stopped on "probing cluster membership failed on ...", with "then resume" as the advice)."""
    recorded = ctx.outputs.get("provision", {}).get("nodes", {})
    staying = [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP and n.name not in leaving
               and (not recorded or n.name in recorded)]
    ssh = ctx.ssh()
    fan = ssh.call(ssh.each(ctx.targets(staying), lambda t: ssh.run(t, "true", check=False, quiet=True)))   # only reaching it counts
    down = sorted(fan.failures)
    if down:
        raise KubernetesError(f"control plane {', '.join(down)} does not answer: removing the etcd member of {', '.join(cps)} "
                              "now could lose quorum",
                              f"bring {', '.join(down)} back first (`ccp diagnose` says why; `ccp install` starts a stopped "
                              f"machine, `ccp node replace {down[0]}` makes a broken one new), then rerun: nothing was changed",
                              [f"{n}: {getattr(e, 'message', None) or e}" for n, e in sorted(fan.failures.items())])


def quorum_holds(ctx: ClusterContext, leaving: dict[str, dict], members: dict[str, str], exclude=()) -> None:
    """A KubernetesError unless every etcd member but the ``leaving`` ones answers healthy: the members that
    stay must hold quorum on their own (a leaving one may be the broken node being replaced). ``exclude``: the
    nodes not to act through (all that leave)."""
    ssh = ctx.ssh()
    t = first_control_plane(ctx, tuple(exclude) or tuple(leaving))
    health = ssh.call(ssh.run(t, HEALTH, sudo=True, check=False, quiet=True))  # exits 1 when any member is down
    try:
        states = json.loads(health.stdout)
    except ValueError:
        states = []
    gone = [rec.get("address", "") for rec in leaving.values()]
    others = [s for s in states if not any(a and f"//{a}:" in s.get("endpoint", "") for a in gone)]
    named = {str(n.address): n.name for n in ctx.nodes}
    sick = [named.get(s.get("endpoint", "?").split("//")[-1].rsplit(":", 1)[0], s.get("endpoint", "?"))
            for s in others if not s.get("health")]
    if sick or len(others) < len(members) - len([n for n in leaving if n in members]):
        who = ", ".join(sick) or "no health answer"
        raise KubernetesError(f"etcd is not healthy ({who}): removing the member of {', '.join(leaving)} now could lose quorum",
                              f"bring {', '.join(sick) or 'etcd'} back first (`ccp diagnose` says why; `ccp node replace` "
                              "makes a broken machine new), then rerun: nothing was changed")


class RemoveNodes(Phase):
    name = "nodes/remove"
    layer = "cluster"
    summary = "drain and remove the nodes no longer in cluster.yaml, etcd members first, before their VMs go"
    why = "removed from cluster.yaml"

    def leaving(self, ctx: ClusterContext) -> dict[str, dict]:
        return facts.gone(ctx)

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"gone": sorted(self.leaving(ctx))}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        leaving = self.leaving(ctx)
        port = facts.nodes_port(ctx) if leaving else None
        if port is None:
            return []   # never joined a cluster: the provision phase just deletes their VMs
        nodes = set(port.node_names())
        cps = [n for n, rec in leaving.items() if rec.get("role") == inventory.ROLE_CP]
        if cps:
            staying_answer(ctx, leaving, cps)
        members = etcd_members(ctx, tuple(leaving)) if cps else {}
        if any(n in members for n in cps):   # before the first drain: a refusal must leave everything as it was
            quorum_holds(ctx, leaving, members)
        actions, left = [], len(members)
        for name in removal_order(leaving):
            if name in nodes:
                actions.append(Action("drain", f"node {name}", f"{self.why}: cordon, evict its pods (PDB-aware)"))
            if name in members:
                left -= 1
                actions.append(Action("remove", f"etcd member {name}", f"one member at a time: {left} left after this one"))
            if name in nodes:
                actions.append(Action("delete", f"node {name}", "kubeadm reset on it, then its Node object"))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp.remote.drain import drain

        port = facts.nodes_port(ctx)
        targets = {a.target.split(" ", 2)[-1] for a in actions}
        leaving = {n: rec for n, rec in self.leaving(ctx).items() if n in targets}
        verbs = {(a.verb, a.target.split(" ")[-1]) for a in actions}
        removed, unreachable = [], []
        for name in removal_order(leaving):
            rec = leaving[name]
            say = (lambda text, n=name: ctx.reporter.item(n, text))
            if ("drain", name) in verbs:
                say("draining")
                drain(port, name, ctx.config.spec.upgrade.drainTimeoutSeconds, say=say)
            if ("remove", name) in verbs:
                self._remove_member(ctx, name, rec.get("address", ""), say)
            if ("delete", name) in verbs:
                if not self._reset(ctx, name, rec, say):
                    unreachable.append(name)
                port.delete_node(name)
                say("removed from the cluster")
            removed.append(name)
        if unreachable:
            ctx.reporter.note(f"kubeadm reset could not run on {', '.join(unreachable)} (no SSH answer): "
                              "they are out of the cluster; their VMs go in the provision phase")
        return {"removed": removed, "resetSkipped": unreachable}

    def _remove_member(self, ctx: ClusterContext, name: str, address: str, say) -> None:
        """Remove ``name``'s member only while every *other* member is healthy (the leaving one may be
        the broken node being replaced): the members left must hold quorum on their own. Checked again here,
        just before the removal (the plan checked all leaving ones before the first drain)."""
        leaving = self.leaving(ctx)
        members = etcd_members(ctx, tuple(leaving))
        if name not in members:
            return
        quorum_holds(ctx, {name: {"address": address}}, members, exclude=tuple(leaving))
        ssh = ctx.ssh()
        t = first_control_plane(ctx, tuple(leaving))
        say(f"removing etcd member {members[name]}")
        ssh.call(ssh.run(t, f"{ETCD} etcdctl {CERTS} member remove {members[name]}", sudo=True, quiet=True))

    def _reset(self, ctx: ClusterContext, name: str, rec: dict, say) -> bool:
        from ccp.remote.ssh import Target

        ssh = ctx.ssh()
        t = Target(name, rec.get("address", ""), ctx.config.spec.ssh.port)
        say("kubeadm reset")
        try:
            return ssh.call(ssh.run(t, RESET, sudo=True, check=False, timeout=300)).ok
        except RemoteError:   # unreachable: a broken node being removed is the usual case
            return False


def check_replaceable(ctx: ClusterContext, name: str) -> dict:
    """The node's recorded facts; a ConfigError for a node that is not there or cannot be replaced safely."""
    nodes = ctx.nodes
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
    if not ctx.provisioned():   # never installed, or destroyed: the install that follows would make all of it
        raise PreflightError(f"cluster {ctx.config.metadata.name} has no machines (never installed, or destroyed): "
                             f"there is no {name} to replace", "`ccp install` creates the cluster")
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
