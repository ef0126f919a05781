"""What the host phases share: rendered files, remote file digests, and plans before provisioning."""

from __future__ import annotations

import hashlib
import shlex

from ccp.context import ClusterContext
from ccp.engine.phase import Action
from ccp.errors import InternalError

REMOTE_DIR = "/var/lib/ccp"


def rendered(ctx: ClusterContext, rel: str) -> str:
    try:
        return (ctx.rendered_dir / rel).read_text()
    except FileNotFoundError:
        raise InternalError(f"{rel} is not rendered in {ctx.rendered_dir}", "run the render phase first (do not skip it)") from None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def remote_digests(ssh, target, paths: list[str]) -> dict[str, str]:
    """sha256 of files on the host; missing files are absent from the answer."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    r = await ssh.run(target, f"sha256sum {quoted} 2>/dev/null; true", sudo=True)
    out = {}
    for line in r.stdout.splitlines():
        digest, _, path = line.partition("  ")
        if path:
            out[path.strip()] = digest
    return out


def before_provisioning(ctx: ClusterContext, verb: str, names: list[str]) -> list[Action] | None:
    """Before the machines exist there is nothing to probe: say what will happen to all of them."""
    if ctx.provisioned():
        return None
    return [Action(verb, f"{len(names)} host{'s' if len(names) != 1 else ''}", "after provisioning", len(names))]


def new_machines(ctx: ClusterContext, names: list[str], verb: str, target: str) -> tuple[list[str], list[Action]]:
    """(the named hosts whose machines exist: probe these; an action for each of the others). A scale-out's
    new machines exist only once provision has run: `ccp plan` says what will happen to them instead of
    failing to reach them (found on real nodes: "cannot probe" for a worker about to be created).
    ``target`` names one host in the phase's own action form, e.g. "host {}" or "node {}"."""
    recorded = ctx.outputs.get("provision", {}).get("nodes", {})
    later = [n for n in names if n not in recorded]
    return [n for n in names if n in recorded], [Action(verb, target.format(n), "a new machine: once it exists")
                                                 for n in later]



# Images only a control plane runs (static pods): a worker is not sent them (hundreds of MB).
CONTROL_PLANE_ONLY = ("_kube-apiserver_", "_kube-controller-manager_", "_kube-scheduler_", "_etcd_")


def control_plane_only(path: str) -> bool:
    return path.endswith(".tar") and any(part in path.rsplit("/", 1)[-1] for part in CONTROL_PLANE_ONLY)
