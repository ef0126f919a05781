"""cni: apply the bundled pod network (kube-router by default, or flannel) through the Kubernetes API
(server-side apply, field manager ccp), then wait until every node is Ready, naming the ones that are
not and why. The DaemonSet carries the hash of what was applied: the same hash and all nodes Ready
means nothing to do."""

from __future__ import annotations

from ccp.cluster.facts import kubeconfig_path, objects_port
from ccp.cluster.hostwork import rendered, sha256
from ccp.config import inventory
from ccp.context import ClusterContext
from ccp.engine.phase import Action, Phase
from ccp.remote.kube import MANAGED_BY, wait_nodes_ready

HASH = "ccp.io/rendered-hash"
DAEMONSETS = {"kube-router": ("kube-system", "kube-router"), "flannel": ("kube-flannel", "kube-flannel")}
READY_TIMEOUT = 900


class Cni(Phase):
    name = "cni"
    layer = "cluster"
    summary = "apply the pod network (CNI) and wait until every node is Ready"

    def inputs(self, ctx: ClusterContext) -> dict:
        return {"cni": ctx.config.spec.addons.cni.name, "podCIDR": str(ctx.config.spec.kubernetes.podCIDR)}

    def _manifest(self, ctx: ClusterContext) -> str:
        return rendered(ctx, f"cni/{ctx.config.spec.addons.cni.name}.yaml")

    def plan(self, ctx: ClusterContext) -> list[Action]:
        cni = ctx.config.spec.addons.cni.name
        if not kubeconfig_path(ctx).exists():
            return [Action("apply", f"{cni} (pod network)", "once the kubeconfig is written")]
        kube = objects_port(ctx)
        namespace, name = DAEMONSETS[cni]
        applied = kube.annotation("DaemonSet", namespace, name, HASH)
        want = sha256(self._manifest(ctx))
        names = [n.name for n in ctx.nodes if n.role != inventory.ROLE_LB]
        not_ready = [n for n in kube.nodes() if n.name in names and not n.ready]
        actions = []
        if applied != want:
            actions.append(Action("apply", f"{cni} (pod network)", "not applied yet" if applied is None else "manifest changed"))
        if not_ready or len([n for n in kube.nodes() if n.name in names]) < len(names):
            actions.append(Action("wait for", f"{len(names)} nodes to be Ready", f"{len(not_ready)} not Ready"))
        else:
            from ccp.remote.kube import ObjectRef

            state = kube.workload(ObjectRef("apps/v1", "DaemonSet", namespace, name))
            if not state.ready and applied == want:
                actions.append(Action("wait for", f"the {cni} pods", state.detail))
        return actions

    def apply(self, ctx: ClusterContext, actions: list[Action]) -> dict:
        cni = ctx.config.spec.addons.cni.name
        kube = objects_port(ctx)
        text = self._manifest(ctx)
        applied = []
        if any(a.verb == "apply" for a in actions):
            applied = kube.apply_yaml(text, {**MANAGED_BY, "ccp.io/addon": "cni"}, {HASH: sha256(text)})
        names = [n.name for n in ctx.nodes if n.role != inventory.ROLE_LB]
        wait_nodes_ready(kube, names, READY_TIMEOUT, progress=ctx.reporter.progress)
        # A node is Ready as soon as a CNI config exists; the network works only once its pods run.
        wait_daemonset(kube, cni, READY_TIMEOUT, progress=ctx.reporter.progress)
        return {"cni": cni, "applied": applied, "ready": names}


def wait_daemonset(kube, cni: str, timeout: float, *, progress=lambda text: None, clock=None, sleep=None) -> None:
    import time

    from ccp.errors import KubernetesError
    from ccp.remote.kube import ObjectRef

    clock, sleep = clock or time.monotonic, sleep or time.sleep
    namespace, name = DAEMONSETS[cni]
    ref = ObjectRef("apps/v1", "DaemonSet", namespace, name)
    deadline = clock() + timeout
    while True:
        state = kube.workload(ref)
        if state.ready:
            return
        progress(f"{cni}: {state.detail}")
        if clock() >= deadline:
            raise KubernetesError(f"the pod network ({cni}) is not running after {timeout:.0f}s: {state.detail}",
                                  f"look at its pods: kubectl -n {namespace} get pods -o wide; kubectl -n {namespace} logs ds/{name}",
                                  kube.warning_events(ref))
        sleep(2)
