"""The ValidationPort for a real cluster, over lightkube."""

from __future__ import annotations

from ccp.errors import KubernetesError
from ccp.remote.kube_objects import LightkubeObjects
from ccp.validation.base import PodState


class LightkubeValidation(LightkubeObjects):
    def namespaces(self, labels):
        from lightkube.resources.core_v1 import Namespace

        return [n.metadata.name for n in self._call(lambda: list(self.client.list(Namespace, labels=labels)), "list namespaces")
                if n.status is None or n.status.phase != "Terminating"]

    def create_namespace(self, name, labels):
        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})

    def delete_namespace(self, name):
        from ccp.remote.kube import ObjectRef

        self.delete(ObjectRef("v1", "Namespace", None, name))

    def create(self, obj):
        from lightkube import codecs

        res = codecs.from_dict(obj)
        self._call(lambda: self.client.create(res), f"create {obj['kind']} {obj['metadata']['name']}")

    def remove(self, kind, namespace, name):
        from ccp.remote.kube import ObjectRef

        api = {"Pod": "v1", "Service": "v1", "PersistentVolumeClaim": "v1", "NetworkPolicy": "networking.k8s.io/v1"}[kind]
        self.delete(ObjectRef(api, kind, namespace, name))

    def pod(self, namespace, name) -> PodState:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Pod

        try:
            p = self.client.get(Pod, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return PodState("Gone")
            raise KubernetesError(f"cannot read pod {namespace}/{name}: {exc.status.message}", "check the kubeconfig's permissions") from None
        reason = ""
        for cs in (p.status.containerStatuses or []) if p.status else []:
            if cs.state and cs.state.waiting:
                reason = f"{cs.state.waiting.reason}: {cs.state.waiting.message or ''}".strip(": ")
        for cond in (p.status.conditions or []) if p.status else []:
            if cond.type == "PodScheduled" and cond.status != "True":
                reason = reason or f"unschedulable: {cond.message}"
        return PodState(p.status.phase if p.status else "Pending", p.spec.nodeName or "", reason)

    def pvc_phase(self, namespace, name):
        from lightkube.resources.core_v1 import PersistentVolumeClaim

        pvc = self._call(lambda: self.client.get(PersistentVolumeClaim, name, namespace=namespace), "read the PVC")
        return pvc.status.phase if pvc.status else "Pending"

    def logs(self, namespace, name):

        return "\n".join(self._call(lambda: list(self.client.log(name, namespace=namespace)), f"read the log of {name}"))

    def schedulable_nodes(self):
        from lightkube.resources.core_v1 import Node

        out = []
        for n in self._call(lambda: list(self.client.list(Node)), "list nodes"):
            taints = [t for t in (n.spec.taints or []) if t.effect in ("NoSchedule", "NoExecute")]
            ready = any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            if ready and not n.spec.unschedulable and not taints:
                out.append(n.metadata.name)
        return out

    def default_storage_class(self):
        from lightkube.resources.storage_v1 import StorageClass

        for sc in self._call(lambda: list(self.client.list(StorageClass)), "list StorageClasses"):
            if (sc.metadata.annotations or {}).get("storageclass.kubernetes.io/is-default-class") == "true":
                return sc.metadata.name
        return None

    def service_exists(self, namespace, name):
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Service

        try:
            self.client.get(Service, name, namespace=namespace)
            return True
        except ApiError:
            return False

    def _http(self):
        # lightkube's configured httpx client (auth, CA, server): the only way to reach non-resource paths
        return self.client._client._client

    def readyz(self, server=None):
        try:
            http = self._http()
            url = f"{server.rstrip('/')}/readyz" if server else "/readyz"
            r = http.get(url, timeout=10)
            return r.status_code == 200, f"HTTP {r.status_code} {r.text[:80]}"
        except Exception as exc:  # connection refused, TLS, timeouts: the answer is "not ready"
            return False, str(exc)[:200]

    def proxy_get(self, namespace, service, port, path):
        r = self._http().get(f"/api/v1/namespaces/{namespace}/services/{service}:{port}/proxy{path}", timeout=30)
        if r.status_code != 200:
            raise KubernetesError(f"the service proxy to {namespace}/{service} answered {r.status_code}", "check the service")
        return r.text
