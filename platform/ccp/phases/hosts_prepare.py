"""hosts/prepare: every Kubernetes node gets swap off, kernel modules, sysctls, a clock check,
containerd and the pinned kubeadm/kubelet/kubectl. The probe reads the script hash each host last
ran (/etc/ccp/prepared); a host already prepared by the same script is left alone."""

from __future__ import annotations

import os
from pathlib import Path

from ccp import render as rendering
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.cluster.hostwork import REMOTE_DIR, before_provisioning, control_plane_only, new_machines, rendered

BUNDLE_DIR = rendering.NODE_PACKAGES_DIR
IMAGES_DIR = rendering.NODE_IMAGES_DIR   # the prepare script imports these into containerd


def k8s_nodes(ctx: ClusterContext) -> list[str]:
    return [n.name for n in ctx.nodes if n.role != inventory.ROLE_LB]


class PrepareHosts(Phase):
    name = "hosts/prepare"
    layer = "hosts"
    summary = "prepare every Kubernetes node: swap, modules, sysctls, clock, containerd, kubeadm/kubelet/kubectl"

    def inputs(self, ctx: ClusterContext) -> dict:
        # the probe compares each host's stamp with the rendered script, so the node list suffices here
        return {"nodes": k8s_nodes(ctx), "kubernetes": ctx.spec_dump()["spec"]["kubernetes"]}

    def plan(self, ctx: ClusterContext) -> list[Action]:
        names = k8s_nodes(ctx)
        early = before_provisioning(ctx, "prepare", names)
        if early is not None:
            return early
        names, later = new_machines(ctx, names, "prepare", "host {}")
        ssh = ctx.ssh()

        async def probe(t):
            want = rendering.script_hash(rendered(ctx, f"scripts/{t.name}/prepare-node.sh"))
            have = (await ssh.run(t, f"cat {rendering.PREPARED_STAMP} 2>/dev/null; true", sudo=True)).stdout.strip()
            return None if have == want else ("new" if not have else f"script changed ({have} -> {want})")

        fan = ssh.call(ssh.each(ctx.targets(names), probe))
        fan.raise_if_failed("probing the hosts")
        return [Action("prepare", f"host {name}", why) for name, why in fan.results.items() if why] + later

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        ssh = ctx.ssh()
        todo = [a.target.removeprefix("host ") for a in actions]
        bundle = _bundle(ctx)   # read once, uploaded to every host
        workers = set(by_role(ctx, inventory.ROLE_WORKER))

        async def prepare(t):
            files = {f"{REMOTE_DIR}/prepare-node.sh": (rendered(ctx, f"scripts/{t.name}/prepare-node.sh"), 0o700)}
            files.update({dest: (data, 0o644) for dest, data in bundle.items()
                          if not (t.name in workers and control_plane_only(dest))})
            # what an earlier prepare left (another version's packages) would be installed with the new
            await ssh.run(t, f"rm -rf {BUNDLE_DIR} {IMAGES_DIR}", sudo=True)
            await ssh.upload(t, files)
            ctx.reporter.item(t.name, "preparing")
            await ssh.run(t, f"bash {REMOTE_DIR}/prepare-node.sh", sudo=True)
            ctx.reporter.item(t.name, "done")

        fan = ssh.call(ssh.each(ctx.targets(todo), prepare))
        fan.raise_if_failed("preparing hosts")
        return {"prepared": sorted(fan.results), "hostKeysPinned": ctx.take_pins()}


def by_role(ctx: ClusterContext, role: str) -> list[str]:
    return [n.name for n in ctx.nodes if n.role == role]


def _bundle(ctx: ClusterContext) -> dict[str, bytes]:
    """Remote path -> content of what the nodes install offline: the packages and images this config
    needs from the offline bundle (spec.offline.bundle, verified by preflight/offline-bundle), or the
    .deb files of kubernetes.packageBundle."""
    from ccp.bundle import archive
    from ccp.bundle.manifest import items
    from ccp.cluster.facts import bundle_path
    from ccp.errors import ConfigError

    offline = bundle_path(ctx)
    if offline is not None:
        return archive.node_files(offline, items(ctx.config), BUNDLE_DIR, IMAGES_DIR, verify=False)
    path = ctx.config.spec.kubernetes.packageBundle
    if not path:
        return {}
    d = Path(os.path.expanduser(path))
    d = d if d.is_absolute() else ctx.loaded.base_dir / d
    debs = sorted(d.glob("*.deb"))
    if not debs:
        raise ConfigError(f"kubernetes.packageBundle {d} holds no .deb files",
                          "put kubeadm, kubelet, kubectl, cri-tools and kubernetes-cni .deb files there")
    return {f"{BUNDLE_DIR}/{p.name}": p.read_bytes() for p in debs}
