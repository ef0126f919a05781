"""Apply, prune, wait for, report on and delete add-ons on any cluster, through an ObjectsPort.

Apply: server-side apply of every rendered object (CRDs first), the secrets built in memory, and a
marker ConfigMap (ccp-addon-<name>: digest, ccp version) that `ccp addons status` and the install's
plan read. Prune: objects labelled with the add-on that it no longer renders are deleted — only
ccp's, never anything else. Wait: every workload until ready, bounded; a timeout names the stuck
object, its conditions and its last warning events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ccp import __version__
from ccp.addons.catalog import Addon
from ccp.addons.manifests import ADDON_LABEL, MANAGED_BY, RenderedAddon
from ccp.errors import AddonError
from ccp.remote.kube import ObjectRef

WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet", "Job")
API_OF = {"Deployment": "apps/v1", "DaemonSet": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1"}
PRUNABLE = [("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "ServiceAccount"),
            ("apps/v1", "Deployment"), ("apps/v1", "DaemonSet"), ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
            ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
            ("storage.k8s.io/v1", "StorageClass"), ("storage.k8s.io/v1", "CSIDriver"),
            ("networking.k8s.io/v1", "IngressClass"), ("networking.k8s.io/v1", "Ingress"),
            ("policy/v1", "PodDisruptionBudget"), ("v1", "Namespace")]
DELETE_LAST = ("Namespace", "CustomResourceDefinition")


def marker_name(addon: Addon) -> str:
    return f"ccp-addon-{addon.name}"


def marker(r: RenderedAddon, previous: dict | None = None) -> dict:
    """What was applied. ``appliedAt`` is kept from the previous marker when the same digest and ccp
    version are applied again, so a re-apply with nothing new changes no object at all."""
    data = {"addon": r.addon.name, "digest": r.digest, "ccpVersion": __version__,
            "appliedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if previous and previous.get("digest") == r.digest and previous.get("ccpVersion") == __version__ \
            and previous.get("appliedAt"):
        data["appliedAt"] = previous["appliedAt"]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": marker_name(r.addon), "namespace": r.addon.namespace,
                         "labels": {MANAGED_BY: "ccp", ADDON_LABEL: r.addon.name, "ccp.io/marker": "true"}},
            "data": data}


@dataclass
class AddonResult:
    name: str
    applied: int = 0
    pruned: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    seconds: float = 0.0


def apply_one(port, r: RenderedAddon, *, wait: bool, timeout: float, say=lambda text: None,
              clock=time.monotonic, sleep=time.sleep) -> AddonResult:
    t0 = clock()
    res = AddonResult(r.addon.name)
    objects = [*r.objects, *r.secret_objects, marker(r, port.get_data(r.addon.namespace, marker_name(r.addon)))]
    say(f"{r.addon.name}: applying {len(objects)} objects")
    port.apply_objects(objects)
    res.applied = len(objects)
    res.pruned = [str(ref) for ref in prune(port, r.addon, {ObjectRef.of(o) for o in objects})]
    if res.pruned:
        say(f"{r.addon.name}: pruned {', '.join(res.pruned)}")
    if wait:
        refs = [ObjectRef.of(o) for o in r.objects if o["kind"] in WORKLOADS]
        wait_ready(port, r.addon, refs, timeout, say=say, clock=clock, sleep=sleep)
        res.ready = [str(x) for x in refs]
    res.seconds = clock() - t0
    return res


def prune(port, addon: Addon, keep: set[ObjectRef]) -> list[ObjectRef]:
    labels = {MANAGED_BY: "ccp", ADDON_LABEL: addon.name}
    stale = [ref for api, kind in PRUNABLE for ref in port.list_labelled(api, kind, labels) if ref not in keep]
    stale.sort(key=lambda ref: ref.kind in DELETE_LAST)
    for ref in stale:
        port.delete(ref)
    return stale


def wait_ready(port, addon: Addon, refs: list[ObjectRef], timeout: float, *, say=lambda text: None,
               clock=time.monotonic, sleep=time.sleep, interval: float = 2.0) -> None:
    deadline = clock() + timeout
    pending = list(refs)
    while pending:
        states = {ref: port.workload(ref) for ref in pending}
        pending = [ref for ref, st in states.items() if not st.ready]
        if not pending:
            return
        say(f"{addon.name}: waiting for {', '.join(f'{r} ({states[r].detail})' for r in pending)}")
        if clock() >= deadline:
            details = []
            for ref in pending:
                details.append(f"{ref}: {states[ref].detail}")
                details += [f"    {e}" for e in port.warning_events(ref)]
            raise AddonError(f"add-on {addon.name} is not ready after {timeout:.0f}s: {', '.join(map(str, pending))}",
                             f"look at the pods (kubectl -n {addon.namespace} get pods) and their events; "
                             "images must be pullable from the nodes (spec.registryMirror for a mirror)", details)
        sleep(interval)


def status(port, addons: list[Addon], enabled: set[str], digests: dict[str, str]) -> list[dict]:
    out = []
    for a in addons:
        data = port.get_data(a.namespace, marker_name(a))
        health = []
        if data:
            for ref in a.readiness:
                st = port.workload(ObjectRef(API_OF.get(ref.kind, "apps/v1"), ref.kind, ref.namespace, ref.name))
                health.append({"object": f"{ref.kind} {ref.namespace}/{ref.name}", "ready": st.ready, "detail": st.detail})
        state = ("not installed" if not data else
                 "disabled but installed" if a.name not in enabled else
                 "healthy" if all(h["ready"] for h in health) else "unhealthy")
        out.append({"addon": a.name, "enabled": a.name in enabled, "state": state,
                    "version": data.get("ccpVersion") if data else None,
                    "upToDate": bool(data) and data.get("digest") == digests.get(a.name), "health": health})
    return out


def delete(port, addon: Addon) -> list[str]:
    """Every object carrying this add-on's label, namespaces last."""
    return [str(ref) for ref in prune(port, addon, set())]
