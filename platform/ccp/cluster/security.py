"""spec.security on the control planes: the cluster's encryption key, which ccp makes once and keeps in
<state>/secrets/encryption-key (0600, in a 0700 directory), and the files kube-apiserver reads, as they are
uploaded next to init.yaml and join.yaml before kubeadm starts the API server's static pod.

The key is registered with ccp.redact the moment it is read or made, is filled into the encryption
configuration only in memory, and reaches a node only inside an SFTP upload (never a command line, a log
line or a rendered file). A control plane that joins a running cluster gets the running cluster's own
encryption configuration, read from the control plane ccp works through: its key is the one the stored
Secrets were written with, whatever this state directory holds.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from pathlib import Path

from ccp import redact, render_security
from ccp.cluster.hostwork import rendered
from ccp.context import ClusterContext
from ccp.engine.phase import Action
from ccp.errors import ConfigError, RemoteError

KEY_BYTES = 32
WHAT = {"encryption": "the encryption configuration", "audit": "the audit policy",
        "podSecurity": "the Pod Security admission configuration"}


def key_path(ctx: ClusterContext) -> Path:
    return ctx.state_dir / "secrets" / "encryption-key"


def stored_key(ctx: ClusterContext) -> str | None:
    """The key in the state directory (registered for masking), or None when there is none yet."""
    path = key_path(ctx)
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"the encryption key {path} cannot be read: {exc.strerror}",
                          "run ccp as the user that owns the state directory") from None
    redact.register(key)
    if not _is_key(key):
        raise ConfigError(f"{path} does not hold a {KEY_BYTES}-byte base64 key",
                          "restore it from a backup of the state directory: the cluster's Secrets can only be read "
                          "with the key they were written with")
    return key


def ensure_key(ctx: ClusterContext) -> str:
    """The stored key, or a new one from the OS's random source, stored before it is used anywhere."""
    key = stored_key(ctx)
    if key is None:
        key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
        redact.register(key)
        _store(ctx, key)
        if ctx.reporter is not None:
            ctx.reporter.note(f"made the cluster's encryption key: {key_path(ctx)} (0600); back it up with the state "
                              "directory, etcd backups cannot be read without it")
    return key


def _is_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == KEY_BYTES
    except (binascii.Error, ValueError):
        return False


def _store(ctx: ClusterContext, key: str) -> None:
    from ccp.engine.files import atomic_write, ensure_dir, make_private

    path = key_path(ctx)
    ensure_dir(path.parent)
    make_private(path.parent)
    atomic_write(path, key + "\n", mode=0o600)


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
    ``source``: a member of the running cluster, for joins: a joining control plane gets its encryption
    configuration, so every control plane holds the same keys, and none when it has none (a cluster
    installed without encryption: its API servers' flags, fixed at init, name no such file)."""
    out = {dest: (rendered(ctx, rel), 0o600) for rel, dest in render_security.files(ctx.config.spec.security).items()}
    if source is not None:
        running = await _running_encryption_config(ctx, ssh, source)
        out.pop(render_security.ENCRYPTION_CONFIG, None)
        if running is not None:
            out[render_security.ENCRYPTION_CONFIG] = (running, 0o600)
    elif render_security.ENCRYPTION_CONFIG in out:
        template = out[render_security.ENCRYPTION_CONFIG][0]
        out[render_security.ENCRYPTION_CONFIG] = (render_security.fill_key(template, ensure_key(ctx)), 0o600)
    return out


async def _running_encryption_config(ctx: ClusterContext, ssh, source) -> str | None:
    """The encryption configuration on ``source``, its keys registered for masking; None when it has none.
    Read quietly: the text is neither logged nor streamed."""
    path = render_security.ENCRYPTION_CONFIG
    r = await ssh.run(source, f"cat {path}", sudo=True, check=False, quiet=True)
    if not r.ok or not r.stdout.strip():
        return None
    keys = _keys(r.stdout)
    if keys is None:
        raise RemoteError(f"{source.name}: {path} is not an encryption configuration",
                          f"compare it with another control plane's {path}; the API server on {source.name} reads it")
    for key in keys:
        redact.register(key)
    if keys and stored_key(ctx) is None and _is_key(keys[0]):
        _store(ctx, keys[0])    # a state directory without the key (lost, or new) gets the cluster's back
        if ctx.reporter is not None:
            ctx.reporter.note(f"the state directory had no encryption key: the running cluster's is kept in {key_path(ctx)}")
    elif keys and keys[0] != stored_key(ctx) and ctx.reporter is not None:
        ctx.reporter.note(f"the running cluster's encryption key is not the one in {key_path(ctx)}: the cluster's is "
                          "used for the joining control planes")
    return r.stdout + "\n"


def _keys(text: str) -> list[str] | None:
    """The secrets of an EncryptionConfiguration, the one that encrypts first; None if it is not one."""
    import yaml

    try:
        doc = yaml.safe_load(text)
        found = []
        for resource in doc["resources"]:
            for provider in resource["providers"]:
                for conf in provider.values():
                    found += [k["secret"] for k in (conf or {}).get("keys", []) if isinstance(k, dict) and "secret" in k]
    except (yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    return found if doc.get("kind") == "EncryptionConfiguration" else None
