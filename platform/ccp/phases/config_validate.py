"""config/validate: the config loaded and checked; record the spec this cluster is built from.

The recorded spec (<state>/cluster.json, secrets as their source only) is what `ccp upgrade` and
`ccp diagnose` compare against later. A state directory belongs to one cluster: pointing a
different cluster at it is refused.
"""

from __future__ import annotations

import json

from ccp.context import ClusterContext
from ccp.engine.files import atomic_write, ensure_dir
from ccp.engine.phase import Action, Phase
from ccp.errors import ConfigError

SPEC_FILE = "cluster.json"


class ValidateConfig(Phase):
    name = "config/validate"
    layer = "prepare"
    summary = "check cluster.yaml and record the cluster spec in the state directory"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"spec": ctx.spec_dump()}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        ctx.nodes   # every new node gets a free address beside the recorded ones, or the run stops here (ConfigError)
        path = ctx.state_dir / SPEC_FILE
        try:
            recorded = json.loads(path.read_text())
        except FileNotFoundError:
            return [Action("write", f"{SPEC_FILE} (the cluster spec)", "new")]
        except ValueError:
            return [Action("write", f"{SPEC_FILE} (the cluster spec)", "the recorded copy is unreadable")]
        other = recorded.get("metadata", {}).get("name")
        if other and other != ctx.config.metadata.name:
            raise ConfigError(f"state directory {ctx.state_dir} belongs to cluster {other!r}, not {ctx.config.metadata.name!r}",
                              "use another --state-dir (or CCP_STATE_DIR) for this cluster")
        current = ctx.spec_dump()
        if recorded != current:
            changed = sorted(k for k, v in current["spec"].items() if recorded.get("spec", {}).get(k) != v)
            return [Action("update", f"{SPEC_FILE} (the cluster spec)", f"changed: {', '.join(changed) or 'metadata'}")]
        return []

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ensure_dir(ctx.state_dir)
        spec = ctx.spec_dump()
        atomic_write(ctx.state_dir / SPEC_FILE, json.dumps(spec, indent=2, sort_keys=True) + "\n")
        cfg = ctx.config
        return {"cluster": cfg.metadata.name, "kubernetes": cfg.spec.kubernetes.version,
                "controlPlanes": cfg.spec.nodes.controlPlane.count,
                "workers": sum(p.count for p in cfg.spec.nodes.workers),
                "loadBalancers": cfg.spec.loadBalancer.nginx.count}
