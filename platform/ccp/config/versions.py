"""Supported Kubernetes versions and their bill of materials (bom.yaml beside this file)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

_BOM_FILE = Path(__file__).with_name("bom.yaml")
CONTROL_PLANE_COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")


@dataclass(frozen=True)
class Bom:
    kubernetes: str          # full version without the leading v, e.g. 1.36.2
    minor: str
    image_repository: str
    etcd: str
    coredns: str
    pause: str
    containerd: str
    cri_tools: str
    images: dict[str, str]
    package_repository: str = ""

    def core_images(self, repository: str | None = None) -> dict[str, str]:
        """What kubeadm pulls. With a repository of one's own (a mirror), kubeadm looks for CoreDNS
        directly under it (<repo>/coredns), not under coredns/ as on the upstream registry."""
        repo = repository or self.image_repository
        out = {c: f"{repo}/{c}:v{self.kubernetes}" for c in CONTROL_PLANE_COMPONENTS}
        out["etcd"] = f"{repo}/etcd:{self.etcd}"
        out["coredns"] = f"{repo}/coredns:{self.coredns}" if repository else f"{repo}/coredns/coredns:{self.coredns}"
        out["pause"] = f"{repo}/pause:{self.pause}"
        return out

    def all_images(self) -> dict[str, str]:
        return {**self.core_images(), **self.images}

    def as_dict(self) -> dict:
        return {"kubernetes": self.kubernetes, "etcd": self.etcd, "coredns": self.coredns,
                "pause": self.pause, "containerd": self.containerd, "criTools": self.cri_tools,
                "images": self.all_images()}


@cache
def _raw() -> dict:
    import yaml

    return yaml.safe_load(_BOM_FILE.read_text())


def supported_minors() -> list[str]:
    """Newest first."""
    return sorted(_raw()["minors"], key=lambda m: tuple(int(x) for x in m.split(".")), reverse=True)


def default_version() -> str:
    return _raw()["minors"][supported_minors()[0]]["default"]


def digests() -> dict[str, str]:
    """Known sha256 digests of bundle items (image reference or file -> digest), when bom.yaml lists them."""
    return dict(_raw().get("digests") or {})


def default_for_minor(minor: str) -> str:
    return _raw()["minors"][minor]["default"]


def bom_for(version: str) -> Bom:
    minor = ".".join(version.split(".")[:2])
    entry = _raw()["minors"][minor]
    return Bom(kubernetes=version, minor=minor, image_repository=_raw()["imageRepository"],
               etcd=entry["etcd"], coredns=entry["coredns"], pause=entry["pause"],
               containerd=str(entry["containerd"]), cri_tools=entry["criTools"], images=dict(entry["images"]),
               package_repository=_raw()["packageRepository"].format(minor=minor))

