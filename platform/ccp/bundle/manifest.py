"""Everything a rendered cluster.yaml needs from outside: container images (the BOM's core images,
the CNI, the enabled add-ons), the Kubernetes and containerd packages for the nodes, and the
Terraform provider when provisioner is terraform. Each item says which file in a bundle holds it;
sha256 digests are recorded where ccp knows them (bom.yaml's ``digests``), else the bundle's own
index carries the digest of what was packed and verification re-checks it."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass

PROVIDER = "vmware/vsphere"


@dataclass(frozen=True)
class Item:
    kind: str            # image | package | terraform-provider
    name: str
    version: str
    pattern: str         # where the bundle keeps it (a glob relative to the bundle root)
    sha256: str | None = None

    def matches(self, path: str) -> bool:
        return fnmatch.fnmatchcase(path, self.pattern)

    def to_dict(self) -> dict:
        return asdict(self)


def image_file(ref: str) -> str:
    """images/<reference with / and : made file-safe>.tar (a docker-archive or OCI tar of that image)."""
    return "images/" + ref.replace("/", "_").replace(":", "_").replace("@", "_") + ".tar"


def items(cfg) -> list[Item]:
    from ccp import addons
    from ccp.config.versions import bom_of, digests

    bom = bom_of(cfg)
    known = digests()
    out = []
    for ref in addons.all_images(cfg, bom):
        name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
        out.append(Item("image", name, tag, image_file(ref), known.get(ref)))
    if bom.packages:   # a bill of materials of one's own names its node packages
        for pkg, version in bom.packages.items():
            out.append(Item("package", pkg, version, f"packages/{pkg}_{version}_*.deb"))
        return out + _provider(cfg)
    k8s = bom.kubernetes
    for pkg, version in (("kubeadm", k8s), ("kubelet", k8s), ("kubectl", k8s), ("cri-tools", bom.cri_tools.lstrip("v"))):
        out.append(Item("package", pkg, version, f"packages/{pkg}_{version}-*_amd64.deb"))
    out.append(Item("package", "kubernetes-cni", "any", "packages/kubernetes-cni_*_amd64.deb"))
    out.append(Item("package", "containerd", bom.containerd, f"packages/containerd_{bom.containerd}*_amd64.deb"))
    return out + _provider(cfg)


def items_with(cfg, boms) -> list[Item]:
    """items(cfg) and those of each bill of materials in ``boms`` (files; an upgrade's target), each once:
    a bundle holding both the running version and the one `ccp upgrade` moves to."""
    from pathlib import Path

    from ccp.config.versions import load_custom, retarget

    out = {i.pattern: i for i in items(cfg)}
    for path in boms:
        path = Path(path).expanduser().resolve()
        try:
            version = load_custom(path).kubernetes
        except ValueError as exc:
            from ccp.errors import ConfigError

            what, _, todo = str(exc).partition("||")
            raise ConfigError(what, todo or "fix the file given to --with-bom") from None
        for i in items(retarget(cfg, version, str(path))):
            out.setdefault(i.pattern, i)
    return list(out.values())


def _provider(cfg) -> list[Item]:
    if cfg.spec.provisioner != "terraform":
        return []
    return [Item("terraform-provider", PROVIDER, "~> 2.10", "terraform/*/vmware/vsphere/2.*/linux_amd64/terraform-provider-vsphere_v2.*")]
