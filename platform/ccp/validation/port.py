"""The ValidationPort for a real cluster, over lightkube."""

from __future__ import annotations

import time

from ccp.errors import KubernetesError
from ccp.remote.kube_objects import LightkubeObjects
from ccp.validation.base import PodState, ServiceState


class LightkubeValidation(LightkubeObjects):
    def namespaces(self, labels):
        from lightkube.resources.core_v1 import Namespace

        return [n.metadata.name for n in self._call(lambda: list(self.client.list(Namespace, labels=labels)), "list namespaces")
                if n.status is None or n.status.phase != "Terminating"]

    def create_namespace(self, name, labels, wait: float = 60):
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import ServiceAccount

        self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
        # pods are refused until the controller-manager has made the namespace's default ServiceAccount
        end = time.monotonic() + wait
        while True:
            try:
                self.client.get(ServiceAccount, "default", namespace=name)
                return
            except ApiError as exc:
                if exc.status.code != 404 or time.monotonic() >= end:
                    raise KubernetesError(f"namespace {name} has no default ServiceAccount after {wait:.0f}s: {exc.status.message}",
                                          "check that kube-controller-manager runs (its serviceaccount controller makes it)") from None
            time.sleep(0.5)

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
        return PodState(p.status.phase if p.status else "Pending", p.spec.nodeName or "", reason,
                        (p.status.podIP or "") if p.status else "")

    def pvc_phase(self, namespace, name):
        from lightkube.resources.core_v1 import PersistentVolumeClaim

        pvc = self._call(lambda: self.client.get(PersistentVolumeClaim, name, namespace=namespace), "read the PVC")
        return pvc.status.phase if pvc.status else "Pending"

    def volume_is_node_local(self, namespace, name) -> bool:
        """The PVC's volume is pinned to one node (local-path, local PVs): it cannot follow a pod elsewhere."""
        from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim

        pvc = self._call(lambda: self.client.get(PersistentVolumeClaim, name, namespace=namespace), "read the PVC")
        volume = pvc.spec.volumeName if pvc.spec else None
        if not volume:
            return False
        pv = self._call(lambda: self.client.get(PersistentVolume, volume), "read the PersistentVolume")
        affinity = pv.spec.nodeAffinity if pv.spec else None
        return bool(affinity and affinity.required and affinity.required.nodeSelectorTerms)

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

    def service(self, namespace, name):
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.core_v1 import Pod, Service
        from lightkube.resources.discovery_v1 import EndpointSlice

        try:
            svc = self.client.get(Service, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise KubernetesError(f"cannot read Service {namespace}/{name}: {exc.status.message}", "check the kubeconfig's permissions") from None
        slices = self._call(lambda: list(self.client.list(EndpointSlice, namespace=namespace, labels={"kubernetes.io/service-name": name})),
                            f"list the endpoints of {namespace}/{name}")
        # one slice per address family: count each pod (or address) once; ready unset means ready
        ready = {(e.targetRef.name if e.targetRef else e.addresses[0]) for s in slices for e in (s.endpoints or [])
                 if e.conditions is None or e.conditions.ready is not False}
        every = {(e.targetRef.name if e.targetRef else e.addresses[0]) for s in slices for e in (s.endpoints or [])}
        selector = svc.spec.selector if svc.spec else None
        if selector:
            pods = self._call(lambda: list(self.client.list(Pod, namespace=namespace, labels=selector)), f"list the pods of {namespace}/{name}")
            backends = sum(1 for p in pods if not p.metadata.deletionTimestamp)
        else:
            backends = len(every)
        return ServiceState((svc.spec.clusterIP or "") if svc.spec else "", backends, len(ready))

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
