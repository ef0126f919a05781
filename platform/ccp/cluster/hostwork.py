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
