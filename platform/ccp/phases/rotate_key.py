"""The phases of `ccp secrets rotate-key`, named after the new key (rotate-key/<key>/<step>) so a stopped rotation
finds its journal, in the order Kubernetes documents (ccp.cluster.encryption.rotation):

  key      the new key made (32 random bytes) and kept in <state>/secrets before any control plane gets it
  add      every control plane reads with it too, still writes with the old key; one at a time, each API
           server restarted and awaited (its own /readyz, then the API through the VIP) before the next
  switch   every control plane writes with it (<state>/secrets/encryption-key becomes it first)
  rewrite  every object of the encrypted resources written again; etcd then holds none with the old key
  drop     every control plane holds only the new key; then the old one leaves <state>/secrets

Each control plane's restart is journaled the moment it is awaited (rotate-key/<key>/<step>/<node>): a resumed
rotation restarts none twice."""

from __future__ import annotations

from typing import ClassVar

from ccp.cluster import apiserver, keyring, reencrypt
from ccp.cluster.encryption import describe, key_names, rotation, same
from ccp.cluster.facts import acting_first, api_endpoint, initialized
from ccp.cluster.security_change import ROTATE, cluster_keys, node_pass, probe_all, remember, run_pass, unfinished
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError

STAGES = {"add": "readers", "switch": "writers", "drop": "final"}


def common_shape(states: dict) -> dict:
    """The encryption configuration every control plane has (refused when they differ or encrypt nothing)."""
    first, st0 = next(iter(states.items()))
    differ = [n for n, st in states.items() if not same(st.encryption.shape, st0.encryption.shape)]
    if differ:
        raise ConfigError(f"the control planes do not run the same encryption configuration ({', '.join(differ)} "
                          f"differ from {first})", "run ccp apply first: it brings every control plane to cluster.yaml's")
    if not key_names(st0.encryption.shape):
        raise ConfigError("the cluster's API servers encrypt nothing: there is no key to rotate",
                          "turn spec.security.encryption on in cluster.yaml and run ccp apply")
    return st0.encryption.shape


class _Rotation(Phase):
    layer = "cluster"
    step: ClassVar[str]

    def __init__(self, key: str):
        self.key = key
        self.name = f"{ROTATE}/{key}/{self.step}"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"key": self.key}

    def members(self, ctx: ClusterContext) -> list[str]:
        names = initialized(ctx) if ctx.provisioned() else []
        if not names:
            raise ConfigError(f"cluster {ctx.config.metadata.name} has no control plane running yet",
                              f"install it first: ccp install --config {ctx.loaded.path}")
        return names

    def transition(self, ctx: ClusterContext, states: dict | None = None):
        """The rotation as its key phase recorded it (the configuration it started from), else as it would start."""
        done = ctx.outputs.get(f"{ROTATE}/{self.key}/key")
        start = {r: tuple(p) for r, p in done["from"].items()} if done else common_shape(states)
        return rotation(start, self.key)


class RotateNewKey(_Rotation):
    step = "key"
    summary = "make the new key and keep it in <state>/secrets (0600) before any control plane gets it"

    def plan(self, ctx: ClusterContext) -> list[Action]:
        if ctx.outputs.get(self.name) and self.key in keyring.keys(ctx.state_dir):
            return []
        if unfinished(ctx.outputs) == "change":
            raise ConfigError("`ccp apply` left a change of spec.security unfinished",
                              f"finish it first: ccp apply --config {ctx.loaded.path} --resume")
        common_shape(probe_all(ctx, self.members(ctx)))
        return [Action("generate", f"the encryption key {self.key}",
                       f"kept in {keyring.secrets_dir(ctx.state_dir) / keyring.KEYS / self.key} (0600) first")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        members = self.members(ctx)
        states = probe_all(ctx, members)
        if ctx.outputs.get(self.name):   # made before, lost from the state directory since: the nodes' copy is kept
            remember(ctx, states)
            if self.key in keyring.keys(ctx.state_dir):
                return ctx.outputs[self.name]
            # no control plane has it yet either: nothing is stored with it, it is made anew
        shape = common_shape(states)
        if any(self.key in st.file.keys for st in states.values()):
            raise ConfigError(f"a control plane already holds a key named {self.key} that this rotation did not make",
                              "the state directory is behind the cluster: rerun `ccp secrets rotate-key` to pick the next name")
        remember(ctx, states)
        if self.key not in keyring.keys(ctx.state_dir):   # a run killed after storing it reuses it
            keyring.store(ctx.state_dir, self.key, keyring.new_key())
            ctx.reporter.note(f"made the encryption key {self.key}: {keyring.secrets_dir(ctx.state_dir) / keyring.KEYS / self.key} "
                              "(0600); back the state directory up with it")
        return {"key": self.key, "from": {r: list(p) for r, p in shape.items()}, "controlPlanes": members}


class _Roll(_Rotation):
    """One stage of the rotation on every control plane, one at a time."""

    def _todo(self, ctx: ClusterContext):
        """(the control planes still to do: not journaled as done in this stage, the stage's configuration, the old
        keys the rotation drops). A control plane cut short before its part was journaled is done again."""
        members = self.members(ctx)
        tr = self.transition(ctx, None if ctx.outputs.get(f"{ROTATE}/{self.key}/key") else probe_all(ctx, members))
        shape = dict(tr.stages)[STAGES[self.step]]
        todo = [] if ctx.outputs.get(self.name) else [n for n in members if not ctx.outputs.get(f"{self.name}/{n}")]
        return todo, shape, [p.split(":", 1)[1] for p in tr.dropped if ":" in p]

    def _old(self, ctx: ClusterContext, dropped: list[str]) -> list[str]:
        return [k for k in keyring.keys(ctx.state_dir) if k in dropped]

    def plan(self, ctx: ClusterContext) -> list[Action]:
        todo, shape, dropped = self._todo(ctx)
        acts = [Action("update", f"kube-apiserver on {n}", f"encryption: {describe(shape)}; restarted, its /readyz and the "
                       "VIP awaited") for n in todo]
        if self.step == "switch" and (keyring.primary(ctx.state_dir) or ("",))[0] != self.key:
            acts.insert(0, Action("write", keyring.primary_path(ctx.state_dir).name, f"{self.key} is the key the cluster "
                                  "encrypts with from now on"))
        if self.step == "drop" and self._old(ctx, dropped):
            acts.append(Action("forget", f"key {', '.join(self._old(ctx, dropped))}", "from <state>/secrets, once no "
                               "control plane holds it"))
        return acts

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        if self.step == "switch":
            keyring.make_primary(ctx.state_dir, self.key)
        ssh = ctx.ssh()
        todo, shape, dropped = self._todo(ctx)
        endpoint = api_endpoint(ctx)
        for t in ctx.targets(todo):
            st = ssh.call(apiserver.probe(ssh, t))
            p = node_pass(ctx, t.name, st, shape, cluster_keys(ctx, {t.name: st}), settings=False)
            ctx.reporter.item(t.name, f"{self.step}: encryption: {describe(shape)}")
            if p.restarts:
                ssh.call(run_pass(ctx, ssh, t, p, endpoint, ctx.reporter.progress))
            else:   # its file is right, but there is no telling whether its API server was restarted since
                ssh.call(apiserver.roll(ssh, t, endpoint, upload={}, say=ctx.reporter.progress))
            ctx.record_part(f"{self.name}/{t.name}", {"stage": STAGES[self.step]})
        forgotten = []
        if self.step == "drop":
            held = {k for st in probe_all(ctx, self.members(ctx)).values() for k in st.file.keys}
            forgotten = keyring.forget(ctx.state_dir, [k for k in self._old(ctx, dropped) if k not in held])
        return {"key": self.key, "controlPlanes": todo, **({"forgotten": forgotten} if forgotten else {})}


class RotateAdd(_Roll):
    step = "add"
    summary = "every control plane reads with the new key too (the old one still encrypts), one at a time"


class RotateSwitch(_Roll):
    step = "switch"
    summary = "every control plane encrypts with the new key, one at a time"


class RotateDrop(_Roll):
    step = "drop"
    summary = "the old key off every control plane, one at a time; then out of <state>/secrets"


class RotateRewrite(_Rotation):
    step = "rewrite"
    summary = "every encrypted object written again with the new key; etcd holds none with the old one after"

    def plan(self, ctx: ClusterContext) -> list[Action]:
        if ctx.outputs.get(self.name):
            return []
        tr = self.transition(ctx, None if ctx.outputs.get(f"{ROTATE}/{self.key}/key") else probe_all(ctx, self.members(ctx)))
        return [Action("rewrite", f"every {', '.join(tr.rewrite)} object", f"so etcd stores each with {self.key}; then "
                       f"nothing may be left with {', '.join(tr.dropped)}")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        tr = self.transition(ctx)
        (t,) = ctx.targets([acting_first(ctx)])
        return reencrypt.rewrite(ctx.ssh(), t, tr.rewrite, tr.dropped, say=ctx.reporter.progress)
