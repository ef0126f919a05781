"""The images a cluster needs, from the bill of materials, with spec.registryMirror applied: what
the manifests (add-ons, CNI, validation pods) are rendered with and what `ccp images` lists."""

from __future__ import annotations

from ccp.addons.catalog import enabled_addons
from ccp.errors import AddonError


def mirrored(image: str, mirror: str | None) -> str:
    """registry.k8s.io/sig-storage/csi-attacher:v4 -> MIRROR/sig-storage/csi-attacher:v4"""
    if not mirror:
        return image
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    return f"{mirror.rstrip('/')}/{path}"


def images_for(cfg, bom) -> dict[str, str]:
    return {k: mirrored(v, cfg.spec.registryMirror) for k, v in bom.images.items()}


def all_images(cfg, bom) -> list[str]:
    """Every image this cluster needs (core, CNI, enabled add-ons), mirror applied: for `ccp images`."""
    imgs = images_for(cfg, bom)
    need = set(bom.core_images(cfg.spec.registryMirror).values())
    need.add(imgs[cfg.spec.addons.cni.name])
    if "busybox" in imgs:   # ccp validate's pods (and local-path's helper pods) run it
        need.add(imgs["busybox"])
    if cfg.spec.addons.cni.name == "flannel":
        need.add(imgs["flannel-cni-plugin"])
    for addon in enabled_addons(cfg):
        for key in addon.images:
            if key not in imgs:
                raise AddonError(f"add-on {addon.name} needs image {key!r}, which the bill of materials lacks",
                                 f"add it to the images of {bom.source if bom.source != 'ccp' else 'platform/ccp/config/bom.yaml'}, "
                                 "or disable the add-on")
            need.add(imgs[key])
    return sorted(need)
