"""Supported Kubernetes versions and their bill of materials (bom.yaml beside this file)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    coredns: str | None      # None: the build has no CoreDNS image (kubeadm's addon/coredns phase is skipped)
    pause: str
    containerd: str
    cri_tools: str
    images: dict[str, str]
    package_repository: str = ""
    packages: dict[str, str] = field(default_factory=dict)   # a custom BOM's node packages: name -> version glob
    source: str = "ccp"      # "ccp" (bom.yaml) or the path of a bill of materials of one's own

    @property
    def deb_version(self) -> str:
        """The Debian version prefix of the Kubernetes packages: a pre-release sorts before its release (~)."""
        return self.kubernetes.replace("-", "~")

    def core_images(self, repository: str | None = None) -> dict[str, str]:
        """What kubeadm pulls. With a repository of one's own (a mirror), kubeadm looks for CoreDNS
        directly under it (<repo>/coredns), not under coredns/ as on the upstream registry."""
        repo = repository or self.image_repository
        out = {c: f"{repo}/{c}:v{self.kubernetes}" for c in CONTROL_PLANE_COMPONENTS}
        out["etcd"] = f"{repo}/etcd:{self.etcd}"
        if self.coredns:
            out["coredns"] = f"{repo}/coredns:{self.coredns}" if repository else f"{repo}/coredns/coredns:{self.coredns}"
        out["pause"] = f"{repo}/pause:{self.pause}"
        return out

    def all_images(self) -> dict[str, str]:
        return {**self.core_images(), **self.images}

    def as_dict(self) -> dict:
        out = {"kubernetes": self.kubernetes, "etcd": self.etcd, "coredns": self.coredns,
               "pause": self.pause, "containerd": self.containerd, "criTools": self.cri_tools,
               "images": self.all_images()}
        if self.source != "ccp":
            out.update(source=self.source, packages=dict(self.packages))
        return out


@cache
def _raw() -> dict:
    import yaml

    # libyaml's loader when present: the pure-Python one is most of `ccp version`'s own time
    return yaml.load(_BOM_FILE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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



def retarget(cfg, version: str, bill_of_materials: str | None = None):
    """A copy of ``cfg`` at another Kubernetes version (an upgrade's target), with the target's own bill
    of materials when the cluster has one (an absolute path, as the config loader leaves it)."""
    out = cfg.model_copy(deep=True)
    out.spec.kubernetes.version = version
    if bill_of_materials is not None:
        out.spec.kubernetes.billOfMaterials = str(bill_of_materials)
    return out


def bom_of(cfg) -> Bom:
    """The bill of materials a cluster uses: its own (kubernetes.billOfMaterials) or ccp's for its version."""
    k8s = cfg.spec.kubernetes
    return load_custom(Path(k8s.billOfMaterials)) if k8s.billOfMaterials else bom_for(k8s.version)


_CUSTOM_KEYS = {"kubernetes", "imageRepository", "etcd", "coredns", "pause", "images", "packages", "packageRepository"}


def load_custom(path: Path) -> Bom:
    """A bill of materials of one's own (see examples/lab/bom.yaml). Problems are ValueErrors in the
    config model's "message||what to do" form, reported at the billOfMaterials field."""
    key = (str(path), path.stat().st_mtime_ns) if path.is_file() else (str(path), None)
    return _load_custom(*key)


@cache
def _load_custom(path_text: str, mtime) -> Bom:
    import yaml

    path = Path(path_text)
    if mtime is None:
        raise ValueError(f"bill of materials {path} does not exist||write one like examples/lab/bom.yaml, or remove billOfMaterials")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"bill of materials {path} cannot be read: {str(exc).splitlines()[0]}||fix the file (YAML)") from None
    if not isinstance(data, dict):
        raise ValueError(f"bill of materials {path} is not a mapping||see examples/lab/bom.yaml")
    unknown = sorted(set(data) - _CUSTOM_KEYS)
    missing = sorted({"kubernetes", "etcd", "pause"} - set(data))
    if unknown or missing:
        what = "; ".join(x for x in (unknown and f"unknown keys {', '.join(unknown)}", missing and f"missing {', '.join(missing)}") if x)
        raise ValueError(f"bill of materials {path}: {what}||its keys are {', '.join(sorted(_CUSTOM_KEYS))}")
    for k in ("images", "packages"):
        v = data.get(k) or {}
        if not isinstance(v, dict) or not all(isinstance(a, str) and isinstance(b, str) for a, b in v.items()):
            raise ValueError(f"bill of materials {path}: {k} must map names to strings||see examples/lab/bom.yaml")
    version = str(data["kubernetes"]).lstrip("v")
    minor = ".".join(version.split("-")[0].split(".")[:2])
    return Bom(kubernetes=version, minor=minor, image_repository=str(data.get("imageRepository") or _raw()["imageRepository"]),
               etcd=str(data["etcd"]), coredns=(str(data["coredns"]) if data.get("coredns") else None),
               pause=str(data["pause"]), containerd=str((data.get("packages") or {}).get("containerd", "")),
               cri_tools="", images=dict(data.get("images") or {}), package_repository=str(data.get("packageRepository") or ""),
               packages=dict(data.get("packages") or {}), source=str(path))
