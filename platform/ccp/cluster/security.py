"""spec.security on the control planes: the cluster's encryption key, which ccp makes once and keeps in
<state>/secrets/encryption-key (0600, in a 0700 directory), and the files kube-apiserver reads, as they are
uploaded next to init.yaml and join.yaml before kubeadm starts the API server's static pod.

The key is registered with ccp.redact the moment it is read or made, is filled into the encryption
configuration only in memory, and reaches a node only inside an SFTP upload (never a command line, a log
line or a rendered file). A control plane that joins a running cluster gets the running cluster's own files,
read from the control plane ccp works through: its keys are the ones the stored Secrets were written with,
whatever this state directory holds (which keeps them too: ccp.cluster.keyring).
"""

from __future__ import annotations

from pathlib import Path

from ccp import redact, render_security
from ccp.cluster import keyring
from ccp.cluster.hostwork import rendered
from ccp.context import ClusterContext
from ccp.engine.phase import Action
from ccp.errors import RemoteError

KEY_BYTES = keyring.KEY_BYTES
WHAT = {"encryption": "the encryption configuration", "audit": "the audit policy",
        "podSecurity": "the Pod Security admission configuration"}


def key_path(ctx: ClusterContext) -> Path:
    return keyring.primary_path(ctx.state_dir)


def stored_key(ctx: ClusterContext) -> str | None:
    """The key the cluster encrypts with, from the state directory (registered for masking); None before one is made."""
    return keyring.primary_key(ctx.state_dir)


def ensure_key(ctx: ClusterContext) -> str:
    """The stored key, or a new one from the OS's random source, stored before it is used anywhere."""
    key = stored_key(ctx)
    if key is None:
        key = keyring.new_key()
        keyring.store(ctx.state_dir, render_security.KEY_NAME, key)
        if ctx.reporter is not None:
            ctx.reporter.note(f"made the cluster's encryption key: {key_path(ctx)} (0600); etcd's Secrets cannot be read "
                              "without it (ccp backup keeps it beside each snapshot)")
    return key


def init_actions(ctx: ClusterContext, node: str) -> list[Action]:
    """What kubeadm init does for spec.security, for the plan (reads only: the key is made at apply)."""
    on = render_security.enabled(ctx.config.spec.security)
    actions = []
    if "encryption" in on and stored_key(ctx) is None:
        actions.append(Action("generate", "the cluster's encryption key", f"kept in {key_path(ctx)}, mode 0600"))
    if on:
        actions.append(Action("upload", f"{', '.join(WHAT[n] for n in on)} to {node}",
                              f"kube-apiserver reads them from {render_security.NODE_DIR}"))
    return actions


async def control_plane_files(ctx: ClusterContext, ssh, source=None) -> dict[str, tuple[str, int]]:
    """Path on the node -> (content, mode) for ssh.upload: the files of the settings that are on, 0600.
    ``source``: a member of the running cluster, for joins: a joining control plane gets the files the running
    API servers have (their flags, which the join's kubeadm takes from kubeadm-config, name them), so every
    control plane holds the same keys; a file the cluster has none of comes from the render (security/apply then
    brings every control plane to cluster.yaml), and no encryption configuration when the cluster has none."""
    out = {dest: (rendered(ctx, rel), 0o600) for rel, dest in render_security.files(ctx.config.spec.security).items()}
    if source is not None:
        out.pop(render_security.ENCRYPTION_CONFIG, None)
        for dest in (render_security.ENCRYPTION_CONFIG, render_security.AUDIT_POLICY, render_security.ADMISSION_CONFIG):
            running = await _running_file(ctx, ssh, source, dest)
            if running is not None:
                out[dest] = (running, 0o600)
    elif render_security.ENCRYPTION_CONFIG in out:
        template = out[render_security.ENCRYPTION_CONFIG][0]
        key = ensure_key(ctx)
        name = (keyring.primary(ctx.state_dir) or (render_security.KEY_NAME, key))[0]
        out[render_security.ENCRYPTION_CONFIG] = (render_security.fill_keys(template, [(name, key)]), 0o600)
    return out


async def _running_file(ctx: ClusterContext, ssh, source, path: str) -> str | None:
    """A file of /etc/kubernetes/ccp on ``source`` (the encryption configuration's keys registered for masking and
    kept in the state directory when it lacks them); None when there is none. Read quietly: never logged."""
    from ccp.cluster.encryption import parse

    r = await ssh.run(source, f"cat {path}", sudo=True, check=False, quiet=True)
    if not r.ok or not r.stdout.strip():
        return None
    if path != render_security.ENCRYPTION_CONFIG:
        return r.stdout + "\n"
    running = parse(r.stdout)
    if running is None:
        raise RemoteError(f"{source.name}: {path} is not an encryption configuration ccp can read",
                          f"compare it with another control plane's {path}; the API server on {source.name} reads it")
    held = keyring.keys(ctx.state_dir)
    for name, key in running.keys.items():
        redact.register(key)
        if name not in held and keyring.is_key(key) and keyring.is_name(name):
            keyring.store(ctx.state_dir, name, key)   # a state directory without the key (lost, or new) gets the cluster's back
            if ctx.reporter is not None:
                ctx.reporter.note(f"the state directory had no encryption key {name}: the running cluster's is kept in "
                                  f"{keyring.secrets_dir(ctx.state_dir)}")
        elif name in held and held[name] != key and ctx.reporter is not None:
            ctx.reporter.note(f"the running cluster's encryption key {name} is not the one in {keyring.secrets_dir(ctx.state_dir)}: "
                              "the cluster's is used for the joining control planes")
    return r.stdout + "\n"
