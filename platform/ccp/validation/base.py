"""What checks share: options, results, the port they talk through, and bounded waits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

VALIDATE_LABEL = "ccp.io/validate"


class CheckFailed(Exception):
    """The cluster did not do what it should (not a ccp bug)."""


class Skip(Exception):
    """The check does not apply here; the message says why."""


@dataclass(frozen=True)
class PodState:
    phase: str            # Pending | Running | Succeeded | Failed | Gone
    node: str = ""
    reason: str = ""      # waiting reason / message when not running
    ip: str = ""          # the pod's IP once it has one


@dataclass(frozen=True)
class ServiceState:
    cluster_ip: str       # "" or "None" when the Service has none (headless)
    backends: int         # pods its selector matches (endpoints when it has no selector)
    ready: int            # ready endpoints behind it


class ValidationPort(Protocol):
    def namespaces(self, labels: dict[str, str]) -> list[str]: ...
    def create_namespace(self, name: str, labels: dict[str, str]) -> None: ...
    def delete_namespace(self, name: str) -> None: ...
    def create(self, obj: dict) -> None: ...
    def remove(self, kind: str, namespace: str, name: str) -> None: ...
    def pod(self, namespace: str, name: str) -> PodState: ...
    def pvc_phase(self, namespace: str, name: str) -> str: ...
    def logs(self, namespace: str, name: str) -> str: ...
    def schedulable_nodes(self) -> list[str]: ...
    def default_storage_class(self) -> str | None: ...
    def service_exists(self, namespace: str, name: str) -> bool: ...
    def service(self, namespace: str, name: str) -> ServiceState | None: ...   # None: no such Service
    def readyz(self, server: str | None = None) -> tuple[bool, str]: ...
    def proxy_get(self, namespace: str, service: str, port: int, path: str) -> str: ...


def bom_image(key: str) -> str:
    """An image of the bill of materials for ccp's default Kubernetes version: what `ccp validate`
    runs when no cluster.yaml says which version (and mirror) the cluster has. One source, so a
    bump in bom.yaml reaches validation too."""
    from ccp.config.versions import bom_for, default_version

    return bom_for(default_version()).images[key]


@dataclass
class Options:
    storage_class: str | None = None
    image: str = field(default_factory=lambda: bom_image("busybox"))
    query_image: str = field(default_factory=lambda: bom_image("elasticsearch"))
    timeout: float = 300
    pvc_size: str = "1Gi"
    cross_node: bool = True
    dns_domain: str = "cluster.local"
    coredns_skipped: bool = False               # cluster.yaml skips kubeadm's addon/coredns phase: says why DNS is absent
    cni_enforces_policy: bool | None = None     # None: unknown (no cluster.yaml) — try it
    monitoring: bool | None = None               # None: use it if it is there
    logging: bool | None = None
    endpoints: list[str] = field(default_factory=list)   # "https://host:port" to check besides the kubeconfig's


@dataclass
class Result:
    check: str
    status: str          # pass | fail | skipped
    seconds: float
    detail: str
    measurements: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """For --output json: a skipped check carries its reason under its own key too."""
        out = {"check": self.check, "status": self.status, "seconds": self.seconds, "detail": self.detail,
               "measurements": self.measurements}
        if self.status == "skipped":
            out["reason"] = self.detail
        return out


@dataclass
class Ctx:
    port: ValidationPort
    opts: Options
    namespace: str
    token: str
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    created: list[tuple[str, str, str]] = field(default_factory=list)   # objects outside our namespace

    def create(self, obj: dict) -> None:
        meta = obj["metadata"]
        meta.setdefault("namespace", self.namespace)
        meta.setdefault("labels", {})[VALIDATE_LABEL] = "true"
        if meta["namespace"] != self.namespace:
            self.created.append((obj["kind"], meta["namespace"], meta["name"]))
        self.port.create(obj)

    def wait_pod(self, name: str, phases: tuple[str, ...], *, namespace: str | None = None, what: str = "") -> PodState:
        ns = namespace or self.namespace
        deadline = self.clock() + self.opts.timeout
        while True:
            st = self.port.pod(ns, name)
            if st.phase in phases:
                return st
            if st.phase == "Failed" and "Failed" not in phases:
                raise CheckFailed(f"pod {name} failed: {st.reason or 'see its log'}")
            if self.clock() >= deadline:
                raise CheckFailed(f"{what or 'pod ' + name} did not get to {'/'.join(phases)} within "
                                  f"{self.opts.timeout:.0f}s (it is {st.phase}{': ' + st.reason if st.reason else ''})")
            self.sleep(1.0)

    def wait_gone(self, name: str) -> None:
        self.wait_pod(name, ("Gone",), what=f"pod {name} being deleted")


def pod(name: str, command: str, image: str, *, env: dict | None = None, volumes: list | None = None,
        mounts: list | None = None, labels: dict | None = None, affinity: dict | None = None,
        namespace: str | None = None, secret_env: dict | None = None) -> dict:
    container = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command],
                 "env": [{"name": k, "value": v} for k, v in (env or {}).items()] +
                        [{"name": k, "valueFrom": {"secretKeyRef": {"name": s, "key": key}}}
                         for k, (s, key) in (secret_env or {}).items()],
                 "volumeMounts": mounts or [],
                 "securityContext": {"allowPrivilegeEscalation": False}}
    spec = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1, "containers": [container], "volumes": volumes or []}
    if affinity:
        spec["affinity"] = affinity
    meta = {"name": name, "labels": dict(labels or {})}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
