"""LightkubeObjects: the ObjectsPort of remote/kube.py for a real cluster (lightkube generic resources)."""

from __future__ import annotations

import time

from ccp.errors import KubernetesError
from ccp.remote.kube import LightkubePort, ObjectRef, WorkloadState


def _resource(api_version: str, kind: str):
    """The lightkube resource class: the standard ones load by name; custom ones must have been
    registered (codecs.from_dict does that when their CRD is applied through the same client)."""
    from lightkube.core.resource_registry import LoadResourceError, resource_registry

    try:
        return resource_registry.load(api_version, kind)
    except LoadResourceError:
        raise KubernetesError(f"unknown resource {kind} ({api_version})", "apply its CustomResourceDefinition first") from None


class LightkubeObjects(LightkubePort):
    def apply_objects(self, objs: list[dict]) -> None:
        from lightkube import codecs

        rank = {"CustomResourceDefinition": 0, "Namespace": 1}
        for obj in sorted(objs, key=lambda o: rank.get(o["kind"], 2)):
            res = codecs.from_dict(obj)
            self._call(lambda r=res: self.client.apply(r, force=True), f"apply {ObjectRef.of(obj)}")
            if obj["kind"] == "CustomResourceDefinition":
                self._established(obj["metadata"]["name"])

    def _established(self, name: str, timeout: float = 60) -> None:
        from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            crd = self._call(lambda: self.client.get(CustomResourceDefinition, name), f"get CRD {name}")
            if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
                return
            time.sleep(1)
        raise KubernetesError(f"CRD {name} was not Established within {timeout:.0f}s", "look at the API server's log")

    def list_labelled(self, api_version, kind, labels) -> list[ObjectRef]:
        from lightkube.core.resource import NamespacedResource

        res = _resource(api_version, kind)
        kwargs = {"labels": labels}
        if issubclass(res, NamespacedResource):
            kwargs["namespace"] = "*"
        items = self._call(lambda: list(self.client.list(res, **kwargs)), f"list {kind}")
        return [ObjectRef(api_version, kind, getattr(i.metadata, "namespace", None), i.metadata.name) for i in items]

    def delete(self, ref: ObjectRef) -> None:
        from lightkube.core.exceptions import ApiError

        res = _resource(ref.api_version, ref.kind)
        try:
            self._call(lambda: self.client.delete(res, ref.name, namespace=ref.namespace) if ref.namespace
                       else self.client.delete(res, ref.name), f"delete {ref}", raise_404=True)
        except ApiError:
            pass   # 404: already gone

    def workload(self, ref: ObjectRef) -> WorkloadState:
        from lightkube.core.exceptions import ApiError

        res = _resource(ref.api_version, ref.kind)
        try:
            obj = self._call(lambda: self.client.get(res, ref.name, namespace=ref.namespace), f"get {ref}", raise_404=True)
        except ApiError as exc:
            return WorkloadState(False, f"missing ({exc.status.reason})")
        return workload_state(ref.kind, obj.to_dict() if hasattr(obj, "to_dict") else obj)

    def warning_events(self, ref: ObjectRef, limit: int = 3) -> list[str]:
        from lightkube.resources.core_v1 import Event

        events = self._call(lambda: list(self.client.list(Event, namespace=ref.namespace or "default",
                                                           fields={"type": "Warning"})), "list events")
        mine = [e for e in events if e.involvedObject and e.involvedObject.name and e.involvedObject.name.startswith(ref.name)]
        mine.sort(key=lambda e: str(e.lastTimestamp or e.eventTime or ""))
        return [f"{e.involvedObject.kind} {e.involvedObject.name}: {e.reason}: {e.message}" for e in mine[-limit:]]

    def get_secret(self, namespace, name) -> dict | None:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Secret

        try:
            return _decoded(self._call(lambda: self.client.get(Secret, name, namespace=namespace),
                                       f"get Secret {namespace}/{name}", raise_404=True).data)
        except ApiError:
            return None   # 404

    def get_data(self, namespace, name) -> dict | None:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import ConfigMap

        try:
            return dict(self._call(lambda: self.client.get(ConfigMap, name, namespace=namespace),
                                   f"get ConfigMap {namespace}/{name}", raise_404=True).data or {})
        except ApiError:
            return None   # 404


def _decoded(data: dict | None) -> dict:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


def workload_state(kind: str, obj: dict) -> WorkloadState:
    """Ready or not, and why — from the object's status as the API returns it."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conds = [f"{c['type']}={c['status']}: {c.get('reason', '')} {c.get('message', '')}".strip()
             for c in status.get("conditions") or [] if c.get("status") != "True" or c["type"] in ("Failed",)]
    if kind == "Deployment" or kind == "StatefulSet":
        want = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        ok = ready >= want and updated >= want and status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        return WorkloadState(ok, f"{ready}/{want} ready" + (f"; {'; '.join(conds)}" if conds else ""))
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0) or 0
        ready = status.get("numberReady", 0) or 0
        updated = status.get("updatedNumberScheduled", 0) or 0   # a rollout is done when every pod runs the new spec
        seen = status.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
        ok = seen and (ready >= want and updated >= want and want > 0 or (want == 0 and "desiredNumberScheduled" in status))
        return WorkloadState(ok, f"{ready}/{want} ready" + (f", {updated}/{want} updated" if updated < want else ""))
    if kind == "Job":
        if status.get("succeeded"):
            return WorkloadState(True, "succeeded")
        return WorkloadState(False, f"{status.get('failed', 0)} failed attempts" + (f"; {'; '.join(conds)}" if conds else ""))
    return WorkloadState(True, "exists")
