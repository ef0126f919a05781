"""The Kubernetes side of diagnose on a real cluster: one list call per kind, plus /readyz?verbose
and the logs the bundle carries. Secrets are never listed."""

from __future__ import annotations

from ccp.diagnose.kubernetes import Snapshot
from ccp.remote.kube_objects import LightkubeObjects


class LightkubeDiagnose(LightkubeObjects):
    def snapshot(self) -> Snapshot:
        from lightkube import operators
        from lightkube.resources.apps_v1 import DaemonSet, Deployment, StatefulSet
        from lightkube.resources.core_v1 import ConfigMap, Event, Node, PersistentVolumeClaim, Pod

        def every(res, what, **kw):
            return [o.to_dict() for o in self._call(lambda: list(self.client.list(res, **kw)), f"list {what}")]

        addon = {"ccp.io/addon": operators.exists()}
        workloads = []
        for res, kind in ((Deployment, "Deployment"), (DaemonSet, "DaemonSet"), (StatefulSet, "StatefulSet")):
            workloads += [{**o, "kind": kind} for o in every(res, f"{kind}s", namespace="*", labels=addon)]
        ok, text = self.readyz_verbose()
        return Snapshot(nodes=every(Node, "nodes"), pods=every(Pod, "pods", namespace="*"),
                        pvcs=every(PersistentVolumeClaim, "PVCs", namespace="*"),
                        events=every(Event, "events", namespace="*"),
                        markers=every(ConfigMap, "add-on markers", namespace="*", labels={"ccp.io/marker": "true"}),
                        workloads=workloads, readyz=text, readyz_ok=ok)

    def rbac_bindings(self) -> list[dict]:
        """Every ClusterRoleBinding and RoleBinding (the hardening section asks what anonymous requests are granted)."""
        from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding, RoleBinding

        out = []
        for res, kind, kw in ((ClusterRoleBinding, "ClusterRoleBinding", {}), (RoleBinding, "RoleBinding", {"namespace": "*"})):
            out += [{**o.to_dict(), "kind": kind} for o in self._call(lambda: list(self.client.list(res, **kw)), f"list {kind}s")]
        return out

    def readyz_verbose(self) -> tuple[bool, str]:
        try:
            r = self.client._client._client.get("/readyz?verbose", timeout=15)   # lightkube's configured httpx client
            return r.status_code == 200, r.text
        except Exception as exc:  # unreachable: the finding says so
            return False, f"/readyz did not answer: {exc}"[:300]

    def log(self, namespace: str, pod: str, container: str, tail: int = 500) -> str:
        try:
            return "\n".join(self.client.log(pod, namespace=namespace, container=container, tail_lines=tail))
        except Exception as exc:  # a pod that never started has no log: say so in the bundle
            return f"(no log: {exc})"
