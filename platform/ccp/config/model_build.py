"""cluster.yaml sections for a build of one's own (kubeadm, kubelet and kube-proxy settings) and for
provisioner: local. Part of the model (model.py imports them); split out to keep files small."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator

from ccp.config.secrets import Strict


def _beside_config(v: str, info) -> Path:
    """A path from cluster.yaml: relative ones are taken from the file's own directory."""
    return _path(v, Path((info.context or {}).get("base_dir", ".")))


def _path(p: str, base_dir: Path) -> Path:
    path = Path(os.path.expanduser(p))
    return path if path.is_absolute() else base_dir / path


class Kubeadm(Strict):
    """For a custom or mirrored build of Kubernetes: what kubeadm must do differently."""

    ignorePreflightErrors: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")]] = Field(
        default_factory=list, description="kubeadm preflight checks to ignore, by name (e.g. HTTPProxyCIDR); never 'all'.")
    skipPhases: list[Annotated[str, Field(pattern=r"^[a-z0-9-]+(/[a-z0-9-]+)*$")]] = Field(
        default_factory=list, description="kubeadm init/join phases to skip, e.g. addon/coredns when the build has no CoreDNS image.")
    patches: str | None = Field(None, description="A directory of kubeadm patches (target[suffix][+patchtype].yaml, e.g. "
                                                  "etcd+json.yaml), uploaded to every control plane and used by init and joins. "
                                                  "Relative to cluster.yaml.")

    @field_validator("patches", mode="after")
    @classmethod
    def _patches_dir(cls, v: str | None, info) -> str | None:
        if v is None:
            return v
        path = _beside_config(v, info)
        if not path.is_dir():
            raise ValueError(f"kubeadm patches directory {path} does not exist||create it, or remove kubeadm.patches")
        return str(path)

    @field_validator("ignorePreflightErrors")
    @classmethod
    def _not_all(cls, v: list[str]) -> list[str]:
        if any(x.lower() == "all" for x in v):
            raise ValueError("ignoring every preflight check hides real faults||name the checks to ignore, e.g. [HTTPProxyCIDR]")
        return v


class Kubelet(Strict):
    failCgroupV1: bool | None = Field(None, description="false lets the kubelet run on a cgroup v1 host (default: the "
                                                        "kubelet's own, which refuses cgroup v1).")


class KubeProxy(Strict):
    conntrackMaxPerCore: int | None = Field(None, ge=0, description="kube-proxy's conntrack table size per core; 0 leaves "
                                                                    "the host's alone (nodes that are containers, e.g. "
                                                                    "provisioner: local, may not set it). Default: kube-proxy's own.")


class LocalMachines(Strict):
    """provisioner: local — nodes are systemd-nspawn machines on the Linux host ccp runs on."""

    machinesDir: str = Field("/var/lib/ccp/local/machines", description="Where each machine's overlay and data live.")
    rootfsCache: str = Field("/var/lib/ccp/local/rootfs", description="Cache of the node root filesystem (built once "
                                                                     "with mmdebstrap, keyed by its inputs).")
    bridge: str | None = Field(None, max_length=15, pattern=r"^[a-z0-9][a-z0-9-]*$",
                               description="Host bridge the machines sit on; default ccp-<cluster name, shortened>.")
    nat: bool = Field(False, description="Masquerade the machines' subnet through the host, so the nodes reach what the "
                                         "host reaches (package repositories, registries): for installs without an "
                                         "offline bundle. The rules go with the bridge.")
