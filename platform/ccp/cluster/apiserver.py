"""kube-apiserver on a running control plane, as spec.security changes it: what it runs with now (probe), its
static pod manifest and kubeadm's ClusterConfiguration with spec.security's flags and mounts set (every other
flag as it was), and one control plane moved to new files and flags (roll): files uploaded, the API server
restarted, its own /readyz and then the API through the VIP awaited before the caller goes on to the next.

Why the manifest is edited rather than made again with `kubeadm init phase control-plane apiserver --config`:
kubeadm would rewrite the whole pod from a configuration ccp renders for the first control plane only (its
advertise address, with the bootstrap token's placeholder that kubeadm refuses to parse), and drop what a
`kubeadm upgrade` or the kubeadm patches put there since. Editing touches only the flags and volumes
spec.security owns (render_security.MANAGED_ARGS, MANAGED_VOLUMES), on each control plane alike, in kubeadm's
own order and format (a test compares the result with what the real kubeadm writes); the kubeadm-config
ConfigMap's ClusterConfiguration gets the same flags, so a later `kubeadm upgrade`, which writes the manifests
from it, keeps them.

The restart moves the manifest out of the kubelet's directory, waits until no kube-apiserver container runs
(hurrying it: static_pods.gone_script), and puts the new one (or the same one) back: the kubelet starts the
API server, which reads its files at start.
An interrupted restart is finished by the next (a manifest left parked is put back first).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

import yaml

from ccp import render_security
from ccp.cluster.encryption import Running, parse
from ccp.errors import KubernetesError, RemoteError

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
PARK = "/etc/kubernetes/ccp-apiserver-restart"
NEW_MANIFEST = f"{PARK}/new.yaml"
PREVIOUS = "/etc/kubernetes/tmp/ccp-kube-apiserver.previous.yaml"
KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"
LOCAL = "127.0.0.1:6443"
SETTING_FILES = {render_security.AUDIT_POLICY: "audit", render_security.ADMISSION_CONFIG: "podSecurity"}


@dataclass
class NodeState:
    """What one control plane's API server runs with."""

    encryption: Running     # the configuration in effect: empty when the manifest names none
    file: Running           # the encryption configuration file (empty shape when there is none)
    digests: dict[str, str]  # sha256 of the audit policy and admission configuration, when present
    manifest: str


async def probe(ssh, t) -> NodeState:
    from ccp.cluster.hostwork import remote_digests

    r = await ssh.run(t, f"cat {MANIFEST}", sudo=True, check=False, quiet=True)
    if not r.ok or not r.stdout.strip():
        raise RemoteError(f"{t.name}: {MANIFEST} cannot be read", f"look at {t.name}: `sudo ls -l /etc/kubernetes/manifests` "
                          f"(an interrupted restart leaves it in {PARK}: rerun ccp to put it back)")
    manifest = r.stdout + "\n"
    enc = await ssh.run(t, f"cat {render_security.ENCRYPTION_CONFIG}", sudo=True, check=False, quiet=True)
    file = parse(enc.stdout if enc.ok else None)
    if file is None:
        raise RemoteError(f"{t.name}: {render_security.ENCRYPTION_CONFIG} is not an encryption configuration ccp can read",
                          f"compare it with another control plane's; the API server on {t.name} reads it")
    on = "encryption-provider-config" in managed(manifest)[0]
    digests = await remote_digests(ssh, t, list(SETTING_FILES))
    return NodeState(file if on else Running({}), file, digests, manifest)


def wanted(security, encrypt: bool) -> dict[str, list[dict]]:
    """The flags and volumes spec.security gives the API server, with the encryption flag as ``encrypt`` says
    (a change that turns encryption off keeps it until nothing is stored encrypted)."""
    enc = security.encryption.model_copy(update={"enabled": encrypt})
    return render_security.api_server(security.model_copy(update={"encryption": enc}))


def _flag(arg: str) -> str:
    return arg.removeprefix("--").split("=", 1)[0]


def _container(pod: dict) -> dict:
    found = [c for c in pod["spec"]["containers"] if c.get("name") == "kube-apiserver"]
    if not found:
        raise KubernetesError("the static pod has no kube-apiserver container", f"look at {MANIFEST} on the control plane")
    return found[0]


def managed(manifest: str) -> tuple[dict[str, str], dict[str, tuple]]:
    """({flag: value}, {volume: (host path, type, mount path, read-only)}) of spec.security's in a manifest."""
    pod = yaml.safe_load(manifest)
    c = _container(pod)
    args = {_flag(a): a.split("=", 1)[1] if "=" in a else "" for a in c.get("command", [])[1:] if _flag(a) in render_security.MANAGED_ARGS}
    hosts = {v["name"]: v.get("hostPath", {}) for v in pod["spec"].get("volumes") or [] if v["name"] in render_security.MANAGED_VOLUMES}
    mounts = {m["name"]: m for m in c.get("volumeMounts") or [] if m["name"] in render_security.MANAGED_VOLUMES}
    vols = {n: (h.get("path"), h.get("type"), mounts.get(n, {}).get("mountPath"), bool(mounts.get(n, {}).get("readOnly")))
            for n, h in hosts.items()}
    return args, vols


def expected(settings: dict[str, list[dict]]) -> tuple[dict[str, str], dict[str, tuple]]:
    args = {a["name"]: a["value"] for a in settings["args"]}
    vols = {v["name"]: (v["hostPath"], v["pathType"], v["mountPath"], v["readOnly"]) for v in settings["volumes"]}
    return args, vols


def edit_manifest(manifest: str, settings: dict[str, list[dict]]) -> str:
    """The static pod with spec.security's flags and volumes as ``settings`` says, the rest untouched, in
    kubeadm's order (flags and volumes sorted by name, keys sorted)."""
    pod = yaml.safe_load(manifest)
    c = _container(pod)
    head, flags = c["command"][:1], [a for a in c["command"][1:] if _flag(a) not in render_security.MANAGED_ARGS]
    flags += [f"--{a['name']}={a['value']}" for a in settings["args"]]
    c["command"] = head + sorted(flags, key=_flag)
    volumes = [v for v in pod["spec"].get("volumes") or [] if v["name"] not in render_security.MANAGED_VOLUMES]
    volumes += [{"hostPath": {"path": v["hostPath"], "type": v["pathType"]}, "name": v["name"]} for v in settings["volumes"]]
    mounts = [m for m in c.get("volumeMounts") or [] if m["name"] not in render_security.MANAGED_VOLUMES]
    mounts += [{"mountPath": v["mountPath"], "name": v["name"], **({"readOnly": True} if v["readOnly"] else {})}
               for v in settings["volumes"]]
    pod["spec"]["volumes"] = sorted(volumes, key=lambda v: v["name"])
    c["volumeMounts"] = sorted(mounts, key=lambda m: m["name"])
    return yaml.safe_dump(pod, default_flow_style=False)


def edit_cluster_configuration(text: str, settings: dict[str, list[dict]]) -> str:
    """kubeadm's ClusterConfiguration (kubeadm-config's) with apiServer's extraArgs and extraVolumes for
    spec.security as ``settings`` says; v1beta4's lists, or v1beta3's map of flags."""
    doc = yaml.safe_load(text)
    api = doc.setdefault("apiServer", {}) or {}
    doc["apiServer"] = api
    extra = api.get("extraArgs") or []
    if isinstance(extra, dict):   # v1beta3
        api["extraArgs"] = {k: v for k, v in extra.items() if k not in render_security.MANAGED_ARGS}
        api["extraArgs"].update({a["name"]: a["value"] for a in settings["args"]})
    else:
        api["extraArgs"] = [a for a in extra if a.get("name") not in render_security.MANAGED_ARGS] + list(settings["args"])
    volumes = [v for v in api.get("extraVolumes") or [] if v.get("name") not in render_security.MANAGED_VOLUMES]
    api["extraVolumes"] = volumes + list(settings["volumes"])
    for key in ("extraArgs", "extraVolumes"):
        if not api[key]:
            del api[key]
    return yaml.safe_dump(doc, sort_keys=False)


def cluster_configuration_managed(text: str) -> tuple[dict[str, str], dict[str, tuple]]:
    api = (yaml.safe_load(text) or {}).get("apiServer") or {}
    extra = api.get("extraArgs") or []
    pairs = extra.items() if isinstance(extra, dict) else [(a.get("name"), a.get("value")) for a in extra]
    args = {k: str(v) for k, v in pairs if k in render_security.MANAGED_ARGS}
    vols = {v["name"]: (v.get("hostPath"), v.get("pathType"), v.get("mountPath"), bool(v.get("readOnly")))
            for v in api.get("extraVolumes") or [] if v.get("name") in render_security.MANAGED_VOLUMES}
    return args, vols


def restart_script(timeout: int = 120) -> str:
    from ccp.remote.static_pods import gone_script

    return (f"set -e; mkdir -p {PARK}; "
            f"[ -f {MANIFEST} ] || [ ! -f {PARK}/current.yaml ] || mv {PARK}/current.yaml {MANIFEST}; "   # an earlier run stopped here
            f"[ -f {MANIFEST} ] || {{ echo 'no {MANIFEST} on this node' >&2; exit 1; }}; "
            f"mv {MANIFEST} {PARK}/current.yaml; {gone_script(('kube-apiserver',), timeout)}"
            f"if [ -z \"$gone\" ]; then mv {PARK}/current.yaml {MANIFEST}; "
            f"echo 'kube-apiserver still runs {timeout} s after its manifest was moved away' >&2; exit 1; fi; "
            f"if [ -f {NEW_MANIFEST} ]; then mkdir -p {PREVIOUS.rsplit('/', 1)[0]}; mv {PARK}/current.yaml {PREVIOUS}; "
            f"mv {NEW_MANIFEST} {MANIFEST}; else mv {PARK}/current.yaml {MANIFEST}; fi; rmdir {PARK}")


async def roll(ssh, t, endpoint: str, *, upload: dict[str, tuple[str, int]], manifest: str | None = None,
               remove: list[str] = (), say=lambda text: None) -> None:
    """One control plane to new files (and manifest): uploaded 0600, API server restarted, its own /readyz and
    then the API at ``endpoint`` answering, files no longer named removed."""
    from ccp.cluster.facts import wait_api

    files = dict(upload)
    if manifest is not None:
        files[NEW_MANIFEST] = (manifest, 0o600)
    if files:
        await ssh.upload(t, files)
    say(f"{t.name}: restarting kube-apiserver")
    from ccp.remote.static_pods import LOCK_WAIT, lock_busy, locked

    r = await ssh.run(t, locked(restart_script()), sudo=True, check=False, timeout=300 + LOCK_WAIT)
    if lock_busy(t.name, r):
        raise lock_busy(t.name, r)
    if not r.ok:
        raise RemoteError(f"{t.name}: kube-apiserver could not be restarted (exit {r.exit_status})",
                          f"look at the kubelet on {t.name} (journalctl -u kubelet) and {MANIFEST}; the control planes "
                          "after it were not touched; then rerun to go on", (r.stderr or r.stdout).splitlines()[-5:])
    say(f"{t.name}: waiting for its /readyz")
    await wait_api(ssh, t, LOCAL, attempts=180, after=f"{t.name}'s API server was restarted",
                   resolution=f"on {t.name}: `crictl ps -a --name kube-apiserver` and its logs (`crictl logs`); the "
                              f"previous manifest is {PREVIOUS}; the other control planes still serve the API")
    say(f"{t.name}: waiting for the API through {endpoint}")
    await wait_api(ssh, t, endpoint, after=f"{t.name}'s API server was restarted")
    if remove:
        await ssh.run(t, "rm -f " + " ".join(shlex.quote(p) for p in remove), sudo=True)
