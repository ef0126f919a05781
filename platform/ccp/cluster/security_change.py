"""What the security/apply phase and the phases of `ccp secrets rotate-key` share: the control planes' API servers
probed, the keys the cluster uses (the state directory's and the running ones, which must agree), what one
control plane needs for one stage of a change (a NodePass: files to upload or remove, a new manifest, why), and
the kubeadm-config ConfigMap's ClusterConfiguration read and replaced through a control plane's admin.conf.

A rotation and a change of security/apply cannot be left half-done side by side: each refuses to start while
the other is unfinished (``unfinished``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ccp import render_security
from ccp.cluster import apiserver, keyring
from ccp.cluster.encryption import Shape, describe, key_names, render, same
from ccp.cluster.hostwork import rendered, sha256
from ccp.errors import ConfigError, KubernetesError

CHANGE = "security/apply/change"        # the journal part recording the change security/apply is making
ROTATE = "rotate-key"
_ROTATION = re.compile(rf"^{ROTATE}/(ccp-\d+)/(\w+)$")


def probe_all(ctx, names: list[str]) -> dict[str, apiserver.NodeState]:
    ssh = ctx.ssh()
    fan = ssh.call(ssh.each(ctx.targets(names), lambda t: apiserver.probe(ssh, t)))
    fan.raise_if_failed("reading the API servers' configuration")
    return {n: fan.results[n] for n in names}


def cluster_keys(ctx, states: dict[str, apiserver.NodeState]) -> dict[str, str]:
    """{name: key}: the state directory's and every control plane's; one name with two keys is refused."""
    held = keyring.keys(ctx.state_dir)
    out = dict(held)
    for node, st in states.items():
        for name, key in st.file.keys.items():
            if out.setdefault(name, key) != key:
                raise ConfigError(f"{node} holds an encryption key named {name} that is not the one "
                                  f"{'in <state>/secrets' if name in held else 'another control plane holds'}",
                                  "restore this cluster's <state>/secrets from its backup (or copy one control plane's "
                                  f"{render_security.ENCRYPTION_CONFIG} to the others); nothing was changed")
    return out


def remember(ctx, states: dict[str, apiserver.NodeState]) -> list[str]:
    """Keep every key a control plane holds in the state directory (before anything changes); -> names added."""
    held = keyring.keys(ctx.state_dir)
    added = []
    for st in states.values():
        for name, key in st.file.keys.items():
            if name not in held:   # a name the keyring cannot keep is refused: the state must hold every key
                keyring.store(ctx.state_dir, name, key)
                held[name] = key
                added.append(name)
    if added and ctx.reporter is not None:
        ctx.reporter.note(f"the state directory lacked the cluster's key(s) {', '.join(added)}: kept in "
                          f"{keyring.secrets_dir(ctx.state_dir)} now")
    return added


@dataclass
class NodePass:
    node: str
    upload: dict[str, tuple[str, int]] = field(default_factory=dict)
    remove: list[str] = field(default_factory=list)
    manifest: str | None = None
    why: list[str] = field(default_factory=list)

    @property
    def restarts(self) -> bool:
        return bool(self.upload) or self.manifest is not None


def node_pass(ctx, node: str, st: apiserver.NodeState, shape: Shape, keys: dict[str, str], *,
              settings: bool) -> NodePass:
    """What ``node`` needs to run with encryption ``shape`` (and, with ``settings``, the audit policy, admission
    configuration and flags cluster.yaml says); keys by name from ``keys``."""
    p = NodePass(node)
    wanted_keys = {n: keys.get(n) for n in key_names(shape)}
    missing = [n for n, k in wanted_keys.items() if k is None]
    if missing:
        raise ConfigError(f"the encryption key {', '.join(missing)} is neither in <state>/secrets nor on a control plane",
                          "restore <state>/secrets from this cluster's backup; nothing was changed")
    encrypt = bool(wanted_keys)
    if encrypt and (not same(st.encryption.shape, shape) or {n: st.file.keys.get(n) for n in wanted_keys} != wanted_keys):
        p.upload[render_security.ENCRYPTION_CONFIG] = (render(shape, keys), 0o600)
        p.why.append(f"encryption: {describe(shape)}")
    elif not encrypt and st.file.shape:
        p.remove.append(render_security.ENCRYPTION_CONFIG)
    if not settings:
        return p
    security = ctx.config.spec.security
    on = render_security.enabled(security)
    for rel, dest in render_security.FILES.values():
        setting = apiserver.SETTING_FILES.get(dest)
        if setting is None:
            continue
        if setting in on and st.digests.get(dest) != sha256(text := _rendered(ctx, rel)):
            p.upload[dest] = (text, 0o600)
            p.why.append(f"{'audit policy' if setting == 'audit' else 'Pod Security admission configuration'} "
                         f"{'changed' if dest in st.digests else 'added'}")
        elif setting not in on and dest in st.digests:
            p.remove.append(dest)
    want = apiserver.wanted(security, encrypt)
    (have_args, have_vols), (want_args, want_vols) = apiserver.managed(st.manifest), apiserver.expected(want)
    if (have_args, have_vols) != (want_args, want_vols):
        p.manifest = apiserver.edit_manifest(st.manifest, want)
        p.why.append("flags " + ", ".join(flag_changes(have_args, want_args)) if have_args != want_args else "volumes")
    return p


def _rendered(ctx, rel: str) -> str:
    """What the render phase writes for this cluster.yaml (a plan sees the change before the render phase ran)."""
    text = ctx.rendered.files.get(rel)
    return text if text is not None else rendered(ctx, rel)


def flag_changes(have: dict[str, str], want: dict[str, str]) -> list[str]:
    out = [f"+{k}" for k in want if k not in have] + [f"-{k}" for k in have if k not in want]
    return out + [f"{k} {have[k]} -> {want[k]}" for k in want if k in have and have[k] != want[k]]


async def run_pass(ctx, ssh, t, p: NodePass, endpoint: str, say) -> None:
    """Carry one NodePass out: with a restart when files or the manifest change, else only the removals."""
    if p.restarts:
        await apiserver.roll(ssh, t, endpoint, upload=p.upload, manifest=p.manifest, remove=p.remove, say=say)
    elif p.remove:
        await ssh.run(t, "rm -f " + " ".join(p.remove), sudo=True)


def kubeadm_config(ctx, t) -> dict:
    """kube-system/kubeadm-config as JSON, read through ``t``'s admin.conf."""
    ssh = ctx.ssh()
    r = ssh.call(ssh.run(t, f"{apiserver.KUBECTL} -n kube-system get configmap kubeadm-config -o json", sudo=True,
                         check=False, quiet=True))
    try:
        cm = json.loads(r.stdout)
        cm["data"]["ClusterConfiguration"]
    except (ValueError, KeyError, TypeError):
        raise KubernetesError(f"the kubeadm-config ConfigMap cannot be read through {t.name} (exit {r.exit_status})",
                              "check the API through the VIP (`kubectl -n kube-system get cm kubeadm-config` with "
                              "<state>/kubeconfig); then rerun", (r.stderr or "").splitlines()[-3:]) from None
    return cm


def replace_kubeadm_config(ctx, t, cm: dict, text: str) -> None:
    """The ConfigMap written back with its resourceVersion: a change made meanwhile is a conflict, not overwritten."""
    ssh = ctx.ssh()
    cm = {**cm, "data": {**cm["data"], "ClusterConfiguration": text}}
    r = ssh.call(ssh.run(t, f"{apiserver.KUBECTL} replace -f -", sudo=True, check=False, stdin=json.dumps(cm)))
    if not r.ok:
        raise KubernetesError(f"the kubeadm-config ConfigMap could not be updated through {t.name} (exit {r.exit_status})",
                              "rerun: it is read again and updated", (r.stderr or "").splitlines()[-3:])


def unfinished(outputs: dict) -> str | None:
    """What is left half-done, in words, or None: a key rotation (its key phase done, its drop not) or a change
    of security/apply (recorded, not finished)."""
    started = {m.group(1) for n in outputs if (m := _ROTATION.match(n)) and m.group(2) == "key"}
    for key in sorted(started):
        if f"{ROTATE}/{key}/drop" not in outputs:
            return f"rotation:{key}"
    change = outputs.get(CHANGE)
    if change and not change.get("finished"):
        return "change"
    return None


def rotation_target(ctx, records: dict, *, resume: bool) -> tuple[str, bool]:
    """(the key a `ccp secrets rotate-key` run rotates to, whether it continues one that did not finish): the
    newest rotation in the journal whose drop step is not done, else a name no key had (state directory, journal,
    control planes)."""
    if not ctx.config.spec.security.encryption.enabled:
        raise ConfigError("cluster.yaml turns encryption at rest off (spec.security.encryption.enabled: false): "
                          "there is no key to rotate", "turn it on and run `ccp apply` first")
    seen = {m.group(1) for n in records if (m := _ROTATION.match(n))}
    open_ = [k for k in seen if getattr(records.get(f"{ROTATE}/{k}/drop"), "status", None) != "done"]
    if open_:
        return max(open_, key=lambda k: int(k.split("-")[1])), True
    if resume:
        raise ConfigError("there is no key rotation to resume in " + str(ctx.state_dir),
                          f"start one: ccp secrets rotate-key --config {ctx.loaded.path}")
    from ccp.cluster.facts import initialized

    members = initialized(ctx) if ctx.provisioned() else []
    running = {k for st in probe_all(ctx, members).values() for k in st.file.keys} if members else set()
    return keyring.next_name(set(keyring.keys(ctx.state_dir)) | seen | running), False
