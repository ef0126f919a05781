"""An add-on's manifests rendered for a cluster: its manifests/*.yaml.j2 through ccp's one jinja
environment (StrictUndefined), parsed right away, every object labelled as ccp's and stamped with
the digest of the whole add-on (the marker compares it; prune finds ccp's objects by the labels).
The Secrets an add-on needs are built only when rendering for apply, never for the files on disk."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ccp import __version__
from ccp.addons.catalog import Addon
from ccp.addons.images import images_for
from ccp.errors import InternalError
from ccp.templating import environment, short_sha256

MANAGED_BY = "app.kubernetes.io/managed-by"
ADDON_LABEL = "ccp.io/addon"
HASH_ANNOTATION = "ccp.io/rendered-hash"


@dataclass
class RenderedAddon:
    addon: Addon
    objects: list[dict]
    secret_objects: list[dict] = field(default_factory=list)   # only when rendered for applying

    @property
    def digest(self) -> str:
        return short_sha256(yaml.safe_dump_all(self.objects, sort_keys=True), 16)

    def text(self) -> str:
        head = f"# add-on {self.addon.name}: {self.addon.description}\n"
        head += "".join(f"# + Secret {s} (made at apply time from cluster.yaml; never written to disk)\n" for s in self.addon.secrets)
        return head + yaml.safe_dump_all(self.objects, sort_keys=False)


def render(addon: Addon, cfg, bom, *, with_secrets: bool = False, existing=None) -> RenderedAddon:
    env = environment()
    ctx = {"spec": cfg.spec, "cluster": cfg.metadata.name, "namespace": addon.namespace, "ccp_version": __version__,
           "kubernetes": bom.kubernetes, "images": images_for(cfg, bom)}
    objects: list[dict] = []
    for tpl in sorted((addon.path / "manifests").glob("*.yaml.j2")):
        try:
            text = env.from_string(tpl.read_text()).render(**ctx)
            docs = [d for d in yaml.safe_load_all(text) if d]
        except Exception as exc:
            raise InternalError(f"add-on {addon.name}: {tpl.name} does not render: {exc}",
                                "this is a ccp bug; please report it with the output of --debug") from exc
        objects.extend(docs)
    for obj in objects:
        _label(obj, addon.name)
    digest = short_sha256(yaml.safe_dump_all(objects, sort_keys=True), 16)
    for obj in objects:
        obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    out = RenderedAddon(addon, objects)
    if with_secrets:
        from ccp.addons.secrets import build

        out.secret_objects = [_label(s, addon.name) for name in addon.secrets for s in build(name, cfg, addon, existing)]
    return out


def _label(obj: dict, addon: str) -> dict:
    meta = obj.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: "ccp", ADDON_LABEL: addon}
    return obj
