"""Facts about one cluster that several phases, backup, upgrade and diagnose all need — one place for
each, so no phase reads them out of another phase:

  from the config    the nodes of a role, the API endpoint (the VIP), the offline bundle's path
  from the state     the kubeconfig ccp writes, the machines gone from cluster.yaml since the last provision
  from the nodes     the control planes that are initialised, the one ccp acts through, the API answering
  for the run        one Kubernetes client of each kind on the cluster's own kubeconfig
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.errors import KubernetesError


def by_role(ctx: ClusterContext, role: str) -> list[str]:
    return [n.name for n in ctx.nodes if n.role == role]


def control_planes(ctx: ClusterContext):
    """The control planes' SSH targets, in config order."""
    return ctx.targets(by_role(ctx, inventory.ROLE_CP))


def fan(ctx: ClusterContext, fn, what: str, targets=None) -> dict:
    """``fn(target)`` on every target at once (the control planes unless given); {name: result}, or a
    RemoteError naming ``what`` and the nodes it failed on."""
    ssh = ctx.ssh()
    out = ssh.call(ssh.each(targets if targets is not None else control_planes(ctx), fn))
    out.raise_if_failed(what)
    return out.results


def api_endpoint(ctx: ClusterContext) -> str:
    return inventory.api_endpoint(ctx.config)


def kubeconfig_path(ctx: ClusterContext) -> Path:
    return ctx.state_dir / "kubeconfig"


def bundle_path(ctx: ClusterContext) -> Path | None:
    return bundle_path_of(ctx.loaded)


def bundle_path_of(loaded) -> Path | None:
    """spec.offline.bundle as a path (relative to cluster.yaml), or None."""
    b = loaded.config.spec.offline.bundle
    if not b:
        return None
    p = Path(b).expanduser()
    return p if p.is_absolute() else loaded.base_dir / p


def gone(ctx: ClusterContext) -> dict[str, dict]:
    """Machines the last provision recorded that cluster.yaml no longer lists: {name: recorded facts}."""
    former = ctx.outputs.get("provision", {}).get("nodes", {}) or {}
    current = {n.name for n in ctx.nodes}
    return {name: rec for name, rec in sorted(former.items()) if name not in current}


async def holding(ssh, targets, marker: str) -> dict[str, bool]:
    """{target name: whether it holds the file ``marker``} (admin.conf, kubelet.conf: cluster membership)."""
    async def probe(t):
        return (await ssh.run(t, f"test -f {marker}", sudo=True, check=False)).ok
    fan = await ssh.each(targets, probe)
    fan.raise_if_failed("probing cluster membership")
    return fan.results


def initialized(ctx: ClusterContext, exclude=()) -> list[str]:
    """The control planes (in inventory order) that hold admin.conf: members of a running cluster."""
    recorded = ctx.outputs.get("provision", {}).get("nodes", {})
    # a machine not made yet (a scale-out's, before provision) holds nothing: it is not asked
    cps = [n for n in by_role(ctx, inventory.ROLE_CP) if n not in exclude and (not recorded or n in recorded)]
    ssh = ctx.ssh()
    members = ssh.call(holding(ssh, ctx.targets(cps), "/etc/kubernetes/admin.conf"))
    return [n for n in cps if members.get(n)]


def acting_first(ctx: ClusterContext, exclude=()) -> str:
    """The control plane ccp works through (join secrets, admin.conf, etcd, backups): the first one that is
    a member of the running cluster, so a replaced first control plane hands the role on; the first in
    the inventory while there is no cluster yet."""
    found = initialized(ctx, exclude) if ctx.provisioned() else []
    return found[0] if found else [n for n in by_role(ctx, inventory.ROLE_CP) if n not in exclude][0]


async def wait_api(ssh, t, endpoint: str, attempts: int = 300, pause: float = 1.0, after: str = "kubeadm init",
                   resolution: str = "check keepalived (the VIP) and NGINX on the load balancers, and `crictl ps` on the "
                                     "control plane") -> str:
    """Retry a read (never the init): the API answering /readyz through the VIP."""
    for i in range(attempts):
        r = await ssh.run(t, f"curl -ksf --max-time 5 https://{endpoint}/readyz", check=False)
        if r.ok:
            return endpoint
        await asyncio.sleep(pause if i else 0.5)
    raise KubernetesError(f"the API does not answer at https://{endpoint}/readyz after {after}", resolution)


def objects_port(ctx: ClusterContext):
    """One Kubernetes client per run, on the cluster's own kubeconfig (the cni and add-ons phases share it)."""
    if ctx.sessions.objects is None:
        from ccp.remote.kube_objects import LightkubeObjects

        ctx.sessions.objects = LightkubeObjects(kubeconfig_path(ctx))
    return ctx.sessions.objects


def nodes_port(ctx: ClusterContext):
    """Cordon, drain, node reads and deletes on the cluster's own kubeconfig (None before it exists)."""
    path = kubeconfig_path(ctx)
    if not path.exists():
        return None
    if ctx.sessions.nodes is None:
        from ccp.remote.kube_nodes import LightkubeNodes

        ctx.sessions.nodes = LightkubeNodes(path)
    return ctx.sessions.nodes
