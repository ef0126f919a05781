"""kubelets/serving-certificates: every kubelet's serving certificate signed by the cluster CA
(spec.security.certificates.kubeletServing; the rules ccp approves by: ccp.remote.kubelet_serving).

The probe asks each node whether its kubelet bootstraps a serving certificate and holds one, and lists the
requests pending: a node without one, and a request that passes the rules (a kubelet's rotation, say), is
something to do. The apply approves what passes, then waits until every node it was asked for holds its
certificate; a request that does not pass stays pending and is named. A node whose kubelet does not bootstrap
(a cluster installed with kubeletServing off, or before ccp set it) has it turned on first: in its kubelet's
config and in kubeadm's kubelet-config ConfigMap (joins and upgrades write the nodes' config from it)."""

from __future__ import annotations

import json
import time

from ccp.remote import kubelet_serving as ks
from ccp.cluster.facts import acting_first
from ccp.cluster.hostwork import before_provisioning, new_machines
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import KubernetesError

WAIT = 180   # s for the kubelets' requests to come and their certificates to be issued


def _kube_nodes(ctx: ClusterContext) -> dict[str, str]:
    return {n.name: str(n.address) for n in ctx.nodes if n.role != inventory.ROLE_LB}


def _states(ctx: ClusterContext, ssh, names: list[str]) -> dict[str, str]:
    async def probe(t):
        return (await ssh.run(t, ks.PROBE, sudo=True)).stdout.strip()
    fan = ssh.call(ssh.each(ctx.targets(names), probe))
    fan.raise_if_failed("probing the kubelets' serving certificates")
    return fan.results


def _requests(ctx: ClusterContext, ssh, first) -> list[dict]:
    out = ssh.call(ssh.run(first, ks.LIST, sudo=True, timeout=60, quiet=True)).stdout   # bulky: not logged
    try:
        return ks.pending(json.loads(out).get("items") or [])
    except ValueError:
        raise KubernetesError(f"{first.name}: `kubectl get csr` did not print JSON",
                              f"run `{ks.LIST}` on {first.name} and look at what it says") from None


async def _bootstrap(ctx: ClusterContext, ssh, t) -> None:
    """serverTLSBootstrap: true in this node's kubelet config, then the kubelet restarted: it asks at once."""
    import yaml

    config = yaml.safe_load((await ssh.run(t, f"cat {ks.KUBELET_CONFIG}", sudo=True)).stdout) or {}
    config["serverTLSBootstrap"] = True
    await ssh.upload(t, {ks.KUBELET_CONFIG: (yaml.safe_dump(config, sort_keys=False), 0o644)})
    await ssh.run(t, "systemctl restart kubelet", sudo=True)
    ctx.reporter.item(t.name, "serving certificate bootstrap on, kubelet restarted")


async def _bootstrap_by_default(ssh, first) -> None:
    """The same in kubeadm's kubelet-config ConfigMap, which a join and `kubeadm upgrade node` write each node's
    kubelet config from."""
    import yaml

    cm = json.loads((await ssh.run(first, f"{ks.KUBECTL} -n kube-system get configmap kubelet-config -o json", sudo=True,
                                   quiet=True)).stdout)
    config = yaml.safe_load(cm["data"]["kubelet"]) or {}
    if config.get("serverTLSBootstrap") is True:
        return
    config["serverTLSBootstrap"] = True
    cm["data"]["kubelet"] = yaml.safe_dump(config, sort_keys=False)
    await ssh.run(first, f"{ks.KUBECTL} replace -f -", sudo=True, stdin=json.dumps(cm))


class KubeletServing(Phase):
    name = "kubelets/serving-certificates"
    layer = "cluster"
    summary = "each kubelet's serving certificate signed by the cluster CA; its request approved after checking it"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"kubeletServing": ctx.config.spec.security.certificates.kubeletServing, "nodes": _kube_nodes(ctx)}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        if not ctx.config.spec.security.certificates.kubeletServing:
            return []
        names = list(_kube_nodes(ctx))
        early = before_provisioning(ctx, "approve", names)
        if early is not None:
            return early
        names, later = new_machines(ctx, names, "approve", "the serving certificate of {}")
        ssh = ctx.ssh()
        states = _states(ctx, ssh, names)
        actions = later + [Action("approve", f"the serving certificate of {n}", "its kubelet's request, once checked")
                           for n in names if states[n] == "want"]
        actions += [Action("approve", f"the serving certificate of {n}", "once it has joined") for n in names
                    if states[n] == "none"]
        actions += [Action("turn on", f"the serving certificate of {n}", "self-signed now: serverTLSBootstrap in its "
                                                                         "kubelet's config, the kubelet restarted, "
                                                                         "its request approved once checked")
                    for n in names if states[n] == "off"]
        if any(s == "have" for s in states.values()):   # a member of a running cluster: requests to look at
            (first,) = ctx.targets([acting_first(ctx)])
            addresses = _kube_nodes(ctx)
            asked = {a.target for a in actions}
            actions += [Action("approve", f"the serving certificate of {n}", f"request {c['metadata']['name']}: a renewal")
                        for c in _requests(ctx, ssh, first) for n in [ks.node_of(c)]
                        if ks.refusal(c, addresses) is None and f"the serving certificate of {n}" not in asked]
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action], clock=time.monotonic, sleep=time.sleep) -> dict:
        wanted = {a.target.removeprefix("the serving certificate of ") for a in actions}
        if not wanted:   # kubeletServing off, or nothing asked: no request is looked at
            return {"approved": {}, "refused": {}}
        ssh = ctx.ssh()
        (first,) = ctx.targets([acting_first(ctx)])
        addresses = _kube_nodes(ctx)
        turn_on = [a.target.removeprefix("the serving certificate of ") for a in actions if a.verb == "turn on"]
        if turn_on:   # a cluster installed without: the kubelets' own config, and kubeadm's for joins and upgrades
            ssh.call(_bootstrap_by_default(ssh, first))
            fan = ssh.call(ssh.each(ctx.targets(turn_on), lambda t: _bootstrap(ctx, ssh, t)))
            fan.raise_if_failed("turning on the kubelets' serving certificates")
        approved: dict[str, str] = {}
        refused: dict[str, str] = {}
        end = clock() + WAIT
        while True:
            for csr in _requests(ctx, ssh, first):
                name, node = csr["metadata"]["name"], ks.node_of(csr)
                if node not in wanted:   # another node's: the next run's plan names it
                    continue
                why = ks.refusal(csr, addresses)
                if why is not None:
                    if name not in refused:
                        ctx.reporter.note(f"not approved: request {name} of {node or csr['spec'].get('username')}: {why}")
                    refused[name] = why
                    continue
                ssh.call(ssh.run(first, ks.approve_command(name), sudo=True, timeout=60))
                approved[name] = node
                ctx.reporter.item(node, "serving certificate approved")
            states = _states(ctx, ssh, sorted(wanted & set(addresses)))
            left = sorted(n for n, s in states.items() if s == "want")
            if not left:
                return {"approved": approved, "refused": refused}
            if clock() >= end:
                why = "; ".join(f"{name}: {r}" for name, r in refused.items())
                raise KubernetesError(
                    f"no serving certificate on {', '.join(left)} after {WAIT}s" + (f" (not approved: {why})" if why else ""),
                    "a request that names other addresses than cluster.yaml's is never approved: check the node's address "
                    "and hostname; else `journalctl -u kubelet` on the node (it asks again on restart), then rerun")
            sleep(2)
