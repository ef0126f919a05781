"""kubeconfig: fetch admin.conf from the first control plane, point it at the VIP and write
<state>/kubeconfig (mode 0600); with --merge-kubeconfig also merge it into ~/.kube/config under a
context named after the cluster. Its credentials never reach the log or the journal."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from ccp import redact
from ccp.cluster.facts import acting_first, api_endpoint, kubeconfig_path
from ccp.cluster.hostwork import before_provisioning
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.files import atomic_write, ensure_dir
from ccp.engine.phase import Action, Phase
from ccp.errors import RemoteError


def endpoint(ctx: ClusterContext) -> str:
    return f"https://{api_endpoint(ctx)}"


def rename(doc: dict, cluster: str, server: str) -> dict:
    """One cluster, user and context, all named after the ccp cluster, pointing at the VIP."""
    c, u = doc["clusters"][0], doc["users"][0]
    c["name"], c["cluster"]["server"] = cluster, server
    u["name"] = f"{cluster}-admin"
    ctx_entry = {"name": cluster, "context": {"cluster": cluster, "user": f"{cluster}-admin"}}
    return {"apiVersion": "v1", "kind": "Config", "clusters": [c], "users": [u], "contexts": [ctx_entry],
            "current-context": cluster, "preferences": {}}


def merge(into: Path, ours: dict) -> None:
    """Replace this cluster's entries in an existing kubeconfig, keep everything else."""
    try:
        doc = yaml.safe_load(into.read_text()) or {}
    except FileNotFoundError:
        doc = {}
    for key in ("clusters", "users", "contexts"):
        names = {e["name"] for e in ours[key]}
        doc[key] = [e for e in doc.get(key) or [] if e.get("name") not in names] + ours[key]
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Config")
    doc.setdefault("current-context", ours["current-context"])
    ensure_dir(into.parent)
    atomic_write(into, yaml.safe_dump(doc, sort_keys=False))


def _expiring(ctx: ClusterContext, path: Path) -> str | None:
    """Why the kubeconfig must be fetched again when its client certificate is near its end (the control planes
    renew admin.conf before that: spec.security.certificates), else None."""
    from ccp.diagnose.certs import WARN_DAYS, from_kubeconfig

    wanted = ctx.config.spec.security.certificates
    days = wanted.renewBeforeDays if wanted.autoRenew else WARN_DAYS
    soonest = min((c.days for c in from_kubeconfig(path)), default=None)
    if soonest is None or soonest >= days:
        return None
    return (f"its client certificate expires in {soonest:.0f} days: the control planes' renewed admin.conf "
            f"(certificates are renewed below {days} days left)")


class Kubeconfig(Phase):
    name = "kubeconfig"
    layer = "cluster"
    summary = "write <state>/kubeconfig pointing at the VIP (and merge it into ~/.kube/config if asked)"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"endpoint": endpoint(ctx), "merge": ctx.merge_kubeconfig}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        first = [n.name for n in ctx.nodes if n.role == inventory.ROLE_CP][0]
        early = before_provisioning(ctx, "fetch admin.conf from", [first])
        if early is not None:
            return early
        path = kubeconfig_path(ctx)
        try:
            doc = yaml.safe_load(path.read_text())
            if doc["clusters"][0]["cluster"]["server"] == endpoint(ctx) and not ctx.merge_kubeconfig:
                expiring = _expiring(ctx, path)
                if expiring is None:
                    return []
                return [Action("write", str(path), expiring)]
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            pass
        return [Action("write", str(path), f"admin credentials from {first}, server {endpoint(ctx)}")]

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        first = acting_first(ctx)   # the first control plane, or the one holding the cluster if it was replaced
        (t,) = ctx.targets([first])
        ssh = ctx.ssh()
        r = ssh.call(ssh.run(t, "cat /etc/kubernetes/admin.conf", sudo=True, secret_output=True))
        try:
            doc = yaml.safe_load(r.stdout)
            for user in doc.get("users", []):
                for field in ("client-key-data", "client-certificate-data", "token"):
                    redact.register(user.get("user", {}).get(field))
            ours = rename(doc, ctx.config.metadata.name, endpoint(ctx))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise RemoteError(f"{first}: /etc/kubernetes/admin.conf is not a kubeconfig",
                              "check the control plane with `kubeadm init phase kubeconfig admin`") from None
        path = kubeconfig_path(ctx)
        ensure_dir(path.parent)
        atomic_write(path, yaml.safe_dump(ours, sort_keys=False))
        merged = None
        if ctx.merge_kubeconfig:
            target = Path(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]).expanduser()
            merge(target, ours)
            merged = str(target)
        return {"kubeconfig": str(path), "server": endpoint(ctx), "context": ctx.config.metadata.name, "mergedInto": merged}
