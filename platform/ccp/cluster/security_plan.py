"""What security/apply would do on a cluster that runs already (ccp.phases.security_apply carries it out): the
change from what the control planes' API servers run with to what cluster.yaml's spec.security says — the
encryption stages of ccp.cluster.encryption.transition, each on every control plane, or one pass over the
control planes whose files or flags differ — its rewrite, kubeadm-config, and the actions a plan shows.

A change that an earlier run recorded (the journal part security/apply/change) and did not finish is what is
planned, with only its parts not journaled as done: it is finished before anything else changes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ccp.cluster import apiserver, keyring
from ccp.cluster.encryption import describe, desired, key_names, transition, writer
from ccp.cluster.facts import acting_first, by_role, initialized
from ccp.cluster.security_change import CHANGE, cluster_keys, kubeadm_config, node_pass, probe_all, unfinished
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action
from ccp.errors import ConfigError
from ccp.render_security import KEY_NAME


@dataclass
class Change:
    id: str
    stages: list[dict]                  # {"name", "shape", "nodes"} in order
    rewrite: list[str]
    dropped: list[str]
    continuing: bool
    members: list[str]
    new_key: bool = False
    actions: list[Action] = field(default_factory=list)


def part(change: Change, what: str) -> str:
    return f"security/apply/{change.id}/{what}"


def encrypts_at_end(ctx: ClusterContext, change: Change) -> bool:
    """Whether the API servers name an encryption configuration once the change is over."""
    if change.stages:
        return bool(key_names(change.stages[-1]["shape"]))
    return ctx.config.spec.security.encryption.enabled


def plan_change(ctx: ClusterContext) -> Change | None:
    """The change to make (its actions filled in), or None before there is a running cluster."""
    if not ctx.provisioned():
        return None
    members = initialized(ctx)
    if not members:
        return None   # kubeadm init sets spec.security up with the cluster
    left = unfinished(ctx.outputs)
    if left and left.startswith("rotation:"):
        raise ConfigError(f"a key rotation to {left.split(':')[1]} did not finish",
                          f"finish it first: ccp secrets rotate-key --config {ctx.loaded.path} --resume")
    states = probe_all(ctx, members)
    keys = cluster_keys(ctx, states)
    # control planes about to join (this run's join phase comes first) get the running ones' files and flags
    joining = [n for n in by_role(ctx, inventory.ROLE_CP) if n not in members]
    states.update({n: states[members[0]] for n in joining})
    members = [n for n in by_role(ctx, inventory.ROLE_CP) if n in states]
    security = ctx.config.spec.security
    record = ctx.outputs.get(CHANGE) if left == "change" else None
    if record:
        change = Change(record["id"], [dict(s, shape={r: tuple(p) for r, p in s["shape"].items()}) for s in record["stages"]],
                        record["rewrite"], record["dropped"], True, members)
    else:
        primary = keyring.primary(ctx.state_dir)
        running = key_names({r: p[:1] for r, p in states[members[0]].encryption.shape.items()})
        name = primary[0] if primary else (running[0] if running else KEY_NAME)
        target = desired(security, name)
        tr = transition([states[n].encryption.shape for n in members], target)
        stages = [{"name": s, "shape": shape, "nodes": list(members)} for s, shape in tr.stages]
        if not stages:
            nodes = [n for n in members if (p := node_pass(ctx, n, states[n], target, keys, settings=True)).restarts or p.remove]
            stages = [{"name": "settings", "shape": target, "nodes": nodes}] if nodes else []
        change = Change(time.strftime("%Y%m%dT%H%M%S"), stages, tr.rewrite, tr.dropped, False, members,
                        new_key=security.encryption.enabled and name not in keys)
        if change.new_key:
            keys = {**keys, name: "0" * 44}   # a stand-in for the plan only: the key is made at apply
    _actions(ctx, change, states, keys)
    return change


def _actions(ctx: ClusterContext, change: Change, states, keys) -> None:
    done = ctx.outputs
    acts = change.actions
    if change.new_key:
        acts.append(Action("generate", "the cluster's encryption key",
                           f"kept in {keyring.primary_path(ctx.state_dir)} (0600) before a control plane gets it"))
    first = True
    for i, stage in enumerate(change.stages):
        if stage["name"] == "final" and change.rewrite and not done.get(part(change, "rewrite")):
            acts.append(_rewrite_action(change))
        for n in stage["nodes"]:
            if done.get(part(change, f"{i}-{stage['name']}/{n}")):
                continue
            p = node_pass(ctx, n, states[n], stage["shape"], keys, settings=first)
            why = "; ".join(p.why) if first else f"encryption: {describe(stage['shape'])}"
            acts.append(Action("update", f"kube-apiserver on {n}", (why or "restart: an earlier run was cut short here")
                               + "; restarted, its /readyz and the VIP awaited"))
        first = first and not stage["nodes"]
    if change.rewrite and not done.get(part(change, "rewrite")) and not any(s["name"] == "final" for s in change.stages):
        acts.append(_rewrite_action(change))
    if not done.get(part(change, "kubeadm-config")) and kubeadm_differs(ctx, change):
        acts.append(Action("update", "the kubeadm-config ConfigMap", "kube-apiserver's spec.security flags and "
                           "volumes, so a later kubeadm upgrade keeps them"))
    primary = keyring.primary(ctx.state_dir)
    gone = [p.split(":", 1)[1] for p in change.dropped if ":" in p]
    gone = [n for n in gone if n in keyring.keys(ctx.state_dir) and (primary is None or n != primary[0])]
    if gone:
        acts.append(Action("forget", f"key {', '.join(gone)}", "from <state>/secrets, once no control plane holds it"))
    if change.continuing and acts:
        acts[0] = Action(acts[0].verb, acts[0].target, "finishing the change an earlier run started; " + acts[0].reason)


def _rewrite_action(change: Change) -> Action:
    final = change.stages[-1]["shape"] if change.stages else {}
    how = ", ".join(dict.fromkeys(writer(final, r).replace(":", " ") for r in change.rewrite))
    return Action("rewrite", f"every {', '.join(change.rewrite)} object", f"so etcd stores each as {how} says"
                  + (f"; then {', '.join(change.dropped)} can go" if change.dropped else ""))


def kubeadm_differs(ctx: ClusterContext, change: Change, cm: dict | None = None) -> bool:
    (t,) = ctx.targets([acting_first(ctx)])
    cm = cm or kubeadm_config(ctx, t)
    want = apiserver.expected(apiserver.wanted(ctx.config.spec.security, encrypts_at_end(ctx, change)))
    return apiserver.cluster_configuration_managed(cm["data"]["ClusterConfiguration"]) != want
