"""restore/encryption-keys: the keys a snapshot's Secrets are stored with, back where they are missing, while the
API servers are stopped (between restore/snapshot and restore/start, so they start with them).

A snapshot taken before a key rotation holds Secrets stored with a key the control planes dropped since; the
backup holds the encryption configuration its API servers read (ccp backup). Each control plane whose
configuration lacks one of its keys gets it added for reading — the key the cluster encrypts with stays first,
so new writes use it — and <state>/secrets keeps it. `ccp apply` (or the next `ccp secrets rotate-key`) later
rewrites what is stored with it and drops it again."""

from __future__ import annotations

from ccp import render_security
from ccp.cluster import keyring
from ccp.cluster.encryption import key_names, merged, parse, render
from ccp.cluster.facts import control_planes, fan as _fan
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError, RemoteError


class RestoreKeys(Phase):
    name = "restore/encryption-keys"
    layer = "cluster"
    summary = "the keys the snapshot's Secrets need, added for reading to every control plane and <state>/secrets"

    def __init__(self, snap):
        self.snap = snap

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"snapshot": self.snap.sha256, "controlPlanes": [t.name for t in control_planes(ctx)]}

    def _backup(self):
        if self.snap.encryption is None:
            return None
        backup = parse(self.snap.encryption.read_text())
        if backup is None:
            raise ConfigError(f"{self.snap.encryption} is not an encryption configuration ccp can read",
                              "restore from another backup, or put the file back as ccp backup wrote it")
        return backup

    def _probe(self, ctx: ClusterContext) -> dict:
        ssh = ctx.ssh()

        async def read(t):
            out = await ssh.run(t, f"cat {render_security.ENCRYPTION_CONFIG}", sudo=True, check=False, quiet=True)
            running = parse(out.stdout if out.ok else None)
            if running is None:
                raise RemoteError(f"{t.name}: {render_security.ENCRYPTION_CONFIG} is not an encryption configuration "
                                  "ccp can read", "compare it with another control plane's")
            return running
        return _fan(ctx, read, "reading the encryption configurations")

    def plan(self, ctx: ClusterContext) -> list[Action]:
        backup = self._backup()
        if backup is None:
            return []
        names = list(backup.keys)
        acts = []
        missing_here = [n for n in names if n not in keyring.keys(ctx.state_dir)]
        if missing_here:
            acts.append(Action("keep", f"key {', '.join(missing_here)} in <state>/secrets", "the snapshot's Secrets need it"))
        for node, running in self._probe(ctx).items():
            lacking = [n for n in names if running.keys.get(n) != backup.keys[n]]
            if not key_names(running.shape):
                ctx.reporter.note(f"{node} encrypts nothing: the snapshot's encrypted Secrets stay unreadable until "
                                  "spec.security.encryption is on (ccp apply)")
            elif lacking:
                acts.append(Action("add", f"key {', '.join(lacking)} to {node}'s encryption configuration",
                                   "for reading: the snapshot's Secrets are stored with it"))
        return acts

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        backup = self._backup()
        held = keyring.keys(ctx.state_dir)
        for name, key in backup.keys.items():
            if held.get(name, key) != key:
                raise ConfigError(f"the backup's encryption key {name} is not the one this state directory holds",
                                  "the backup is another cluster's: restore this cluster's own; nothing was changed")
            if name not in held and keyring.is_name(name):
                keyring.store(ctx.state_dir, name, key)
        ssh = ctx.ssh()
        running = self._probe(ctx)
        todo = [t for t in control_planes(ctx) if key_names(running[t.name].shape)
                and any(running[t.name].keys.get(n) != k for n, k in backup.keys.items())]

        async def add(t):
            now = running[t.name]
            if any(now.keys.get(n, k) != k for n, k in backup.keys.items()):
                raise ConfigError(f"{t.name} holds a key named like one of the backup's, but not the same key",
                                  "the backup is another cluster's: restore this cluster's own")
            shape = merged([now.shape, backup.shape], now.shape)
            await ssh.upload(t, {render_security.ENCRYPTION_CONFIG: (render(shape, {**backup.keys, **now.keys}), 0o600)})
            ctx.reporter.item(t.name, "the snapshot's keys added for reading")
        _fan(ctx, add, "adding the snapshot's encryption keys", todo)
        return {"keys": list(backup.keys), "controlPlanes": [t.name for t in todo]}

