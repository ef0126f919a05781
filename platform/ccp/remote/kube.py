"""The Kubernetes API through lightkube: server-side apply with field manager ``ccp``, CRDs first,
and waiting for nodes with a bounded timeout that names what is stuck and why.

``KubePort`` is the narrow interface the logic needs, so that logic can be tested against a fake
port; ``LightkubePort`` is the real one for any cluster given a kubeconfig.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ccp.errors import KubernetesError

MANAGED_BY = {"app.kubernetes.io/managed-by": "ccp"}


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool
    why: str   # the Ready condition's reason and message when not ready


class KubePort(Protocol):
    def apply_yaml(self, text: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> list[str]: ...
    def nodes(self) -> list[NodeState]: ...
    def annotation(self, kind: str, namespace: str | None, name: str, key: str) -> str | None: ...


class LightkubePort:
    def __init__(self, kubeconfig: Path, context: str | None = None):
        from lightkube import Client, KubeConfig

        try:
            config = KubeConfig.from_file(str(kubeconfig))
            self.client = Client(config=config.get(context_name=context) if context else config, field_manager="ccp")
        except Exception as exc:  # a missing/invalid kubeconfig is the user's to fix
            raise KubernetesError(f"cannot use kubeconfig {kubeconfig}: {exc}", "pass a valid --kubeconfig") from None

    def apply_yaml(self, text, labels, annotations=None) -> list[str]:
        from lightkube import codecs

        objs = codecs.load_all_yaml(text, create_resources_for_crds=True)
        objs.sort(key=lambda o: 0 if o.kind == "CustomResourceDefinition" else 1 if o.kind == "Namespace" else 2)
        applied = []
        for obj in objs:
            obj.metadata.labels = {**(obj.metadata.labels or {}), **labels}
            if annotations:
                obj.metadata.annotations = {**(obj.metadata.annotations or {}), **annotations}
            self._call(lambda o=obj: self.client.apply(o, force=True), f"apply {obj.kind}/{obj.metadata.name}")
            applied.append(f"{obj.kind}/{obj.metadata.name}")
        return applied

    def nodes(self) -> list[NodeState]:
        from lightkube.resources.core_v1 import Node

        out = []
        for node in self._call(lambda: list(self.client.list(Node)), "list nodes"):
            cond = next((c for c in (node.status.conditions or []) if c.type == "Ready"), None)
            ready = cond is not None and cond.status == "True"
            why = "" if ready else (f"{cond.reason}: {cond.message}" if cond else "no Ready condition yet")
            out.append(NodeState(node.metadata.name, ready, why))
        return out

    def annotation(self, kind, namespace, name, key) -> str | None:
        from lightkube.core.exceptions import ApiError
        from lightkube.resources.apps_v1 import DaemonSet

        resource = {"DaemonSet": DaemonSet}[kind]
        try:
            obj = self._call(lambda: self.client.get(resource, name, namespace=namespace), f"get {kind}/{name}", raise_404=True)
        except ApiError:
            return None
        return (obj.metadata.annotations or {}).get(key)

    @staticmethod
    def _call(fn, what: str, raise_404: bool = False, *, transient_budget: float = 30.0, sleep=time.sleep, clock=time.monotonic):
        """One API call. 403 and 503 are retried for a bounded time, saying so in the log: behind the VIP, an
        API server that has just (re)started answers them until its authorisation cache is synced (seen on
        real nodes when a stopped control plane came back). The request was refused, so repeating it —
        a read, a server-side apply, a create — cannot do anything twice."""
        from lightkube.core.exceptions import ApiError

        deadline = clock() + transient_budget
        while True:
            try:
                return fn()
            except ApiError as exc:
                if exc.status.code in (403, 503) and clock() < deadline:
                    logging.getLogger("ccp").info("retrying %s: the API answered %s (%s)", what, exc.status.code, exc.status.message)
                    sleep(2)
                    continue
                LightkubePort._refused(exc, what, raise_404)
            except Exception as exc:  # connection errors from httpx and the like
                raise KubernetesError(f"cannot reach the Kubernetes API to {what}: {exc}",
                                      "check that the API endpoint (the VIP) answers from here") from None

    @staticmethod
    def _refused(exc, what: str, raise_404: bool):
        if raise_404 and exc.status.code == 404:
            raise exc
        raise KubernetesError(f"the Kubernetes API refused to {what}: {exc.status.message}",
                                  "check the kubeconfig's permissions and the API server's log") from None


def wait_nodes_ready(port: KubePort, names: list[str], timeout: float, *, interval: float = 2.0,
                     clock=time.monotonic, sleep=time.sleep, progress=lambda text: None) -> list[NodeState]:
    """Until every named node is Ready; on timeout the error names each stuck node and its condition."""
    deadline = clock() + timeout
    while True:
        states = {n.name: n for n in port.nodes()}
        stuck = [states.get(name) or NodeState(name, False, "not registered with the API server") for name in names
                 if not (states.get(name) and states[name].ready)]
        if not stuck:
            return [states[n] for n in names]
        progress(f"{len(names) - len(stuck)}/{len(names)} nodes Ready")
        if clock() >= deadline:
            raise KubernetesError(f"{len(stuck)} of {len(names)} nodes are not Ready after {timeout:.0f}s",
                                  "look at the CNI pods (kubectl -n kube-system get pods -o wide) and the kubelet log of each node",
                                  [f"{n.name}: {n.why}" for n in stuck])
        sleep(interval)


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str | None
    name: str

    @classmethod
    def of(cls, obj: dict) -> "ObjectRef":
        meta = obj.get("metadata", {})
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


@dataclass(frozen=True)
class WorkloadState:
    ready: bool
    detail: str        # e.g. "1/3 ready; Progressing=False: ProgressDeadlineExceeded"


class ObjectsPort(Protocol):
    """What the add-on framework needs from a cluster."""

    def apply_objects(self, objs: list[dict]) -> None: ...
    def list_labelled(self, api_version: str, kind: str, labels: dict[str, str]) -> list[ObjectRef]: ...
    def delete(self, ref: ObjectRef) -> None: ...
    def workload(self, ref: ObjectRef) -> WorkloadState: ...
    def warning_events(self, ref: ObjectRef, limit: int = 3) -> list[str]: ...
    def get_data(self, namespace: str, name: str) -> dict | None: ...
    def get_secret(self, namespace: str, name: str) -> dict | None: ...
