"""render: write every file the later phases need into <state>/rendered/.

Writes only what changed and removes only files an earlier render wrote, so a rerun with the
same config touches nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from ccp import __version__
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase


def summarize(changes) -> list[Action]:
    """One action per (verb, top-level directory): 500 workers make one line, not 2000."""
    counts = Counter((c.action, c.path.split("/", 1)[0]) for c in changes if c.action != "keep")
    verbs = {"create": "write", "update": "rewrite", "delete": "remove"}
    reasons = {"create": "new", "update": "changed", "delete": "no longer rendered"}
    return [Action(verbs[a], f"{n} {group} file{'s' if n != 1 else ''}", reasons[a], n)
            for (a, group), n in sorted(counts.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


class Render(Phase):
    name = "render"
    layer = "prepare"
    summary = "render Terraform, cloud-init, kubeadm, NGINX and keepalived files"

    def inputs(self, ctx: ClusterContext) -> dict:
        from ccp import render
        from ccp.config.versions import bom_of

        key = ctx.config.spec.ssh.public_key_path(ctx.loaded.base_dir)
        try:
            key_digest = hashlib.sha256(key.read_bytes()).hexdigest()
        except OSError:
            key_digest = "missing"
        return {"spec": ctx.spec_dump(), "templates": render.templates_digest(), "ccp": __version__,
                "bom": bom_of(ctx.config).as_dict(), "sshPublicKey": key_digest}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        from ccp import render

        ctx.render_changes = render.diff(ctx.rendered, ctx.rendered_dir)
        return summarize(ctx.render_changes)

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        from ccp import render

        rendered = ctx.rendered
        changes = render.write(rendered, ctx.rendered_dir, ctx.render_changes)
        return {"dir": str(ctx.rendered_dir), "files": len(rendered.files),
                "changed": sum(1 for c in changes if c.action != "keep")}
