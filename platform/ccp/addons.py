"""The add-on framework: discover addons/<name>/addon.yaml, order by depends_on, decide which are
enabled for a cluster, render their manifests (StrictUndefined, parsed right away), label every
object, and list the images they need. Applying, pruning and waiting live in addons_apply.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ccp import __version__, resources
from ccp.errors import AddonError, ConfigError, InternalError

MANAGED_BY = "app.kubernetes.io/managed-by"
ADDON_LABEL = "ccp.io/addon"
HASH_ANNOTATION = "ccp.io/rendered-hash"


@dataclass(frozen=True)
class Readiness:
    kind: str
    name: str
    namespace: str | None


@dataclass
class Addon:
    name: str
    description: str
    namespace: str
    path: Path
    depends_on: list[str] = field(default_factory=list)
    enabled: str = "true"
    images: list[str] = field(default_factory=list)
    readiness: list[Readiness] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)


@dataclass
class RenderedAddon:
    addon: Addon
    objects: list[dict]
    secret_objects: list[dict] = field(default_factory=list)   # only when rendered for applying

    @property
    def digest(self) -> str:
        return _sha256(yaml.safe_dump_all(self.objects, sort_keys=True), 16)

    def text(self) -> str:
        head = f"# add-on {self.addon.name}: {self.addon.description}\n"
        head += "".join(f"# + Secret {s} (made at apply time from cluster.yaml; never written to disk)\n" for s in self.addon.secrets)
        return head + yaml.safe_dump_all(self.objects, sort_keys=False)


@cache
def discover(root: Path | None = None) -> dict[str, Addon]:
    root = root or resources.addons_dir()
    out: dict[str, Addon] = {}
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml: `ccp addons list` in 2 ms, not 12
    for meta in sorted(root.glob("*/addon.yaml")):
        raw = yaml.load(meta.read_text(), Loader=loader) or {}
        try:
            out[raw["name"]] = Addon(
                name=raw["name"], description=raw.get("description", ""), namespace=raw["namespace"], path=meta.parent,
                depends_on=list(raw.get("depends_on") or []), enabled=str(raw.get("enabled", "true")),
                images=list(raw.get("images") or []), secrets=list(raw.get("secrets") or []),
                readiness=[Readiness(r["kind"], r["name"], r.get("namespace", raw["namespace"])) for r in raw.get("readiness") or []])
        except KeyError as exc:
            raise InternalError(f"{meta} lacks {exc}", "fix the add-on definition") from None
    return out


def order(addons: dict[str, Addon], names: list[str] | None = None) -> list[Addon]:
    """Dependencies first. ``names`` limits the result (their dependencies are not pulled in)."""
    if names:
        unknown = sorted(set(names) - set(addons))
        if unknown:
            raise ConfigError(f"unknown add-on {', '.join(unknown)}", f"choose from: {', '.join(sorted(addons))}")
    done: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in trail:
            raise InternalError(f"add-ons depend on each other in a circle: {' -> '.join(trail + (name,))}", "fix depends_on")
        if name not in addons:
            raise InternalError(f"add-on {trail[-1]} depends on {name}, which does not exist", "fix depends_on")
        for dep in addons[name].depends_on:
            visit(dep, trail + (name,))
        done.append(name)

    for name in sorted(addons):
        visit(name, ())
    return [addons[n] for n in done if not names or n in names]


def _sha256(text: str, digits: int) -> str:
    """The first hex digits of the text's SHA-256. hashlib is imported here: loading OpenSSL is a good
    part of what `ccp addons list` would otherwise spend."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:digits]


def _env():
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["b64encode"] = lambda s: __import__("base64").b64encode(str(s).encode()).decode()
    # a Job is immutable: name it after what it does, so a change makes a new Job (and prunes the old)
    env.filters["short_hash"] = lambda s: _sha256(str(s), 8)
    env.filters["es_duration"] = es_duration
    return env


def es_duration(text: str) -> str:
    """cluster.yaml's 2w or 1y in units Elasticsearch's lifecycle ages accept (d, h)."""
    n, unit = int(text[:-1]), text[-1]
    return {"w": f"{n * 7}d", "y": f"{n * 365}d"}.get(unit, text)


def is_enabled(addon: Addon, cfg) -> bool:
    return bool(_env().compile_expression(addon.enabled)(spec=cfg.spec, cluster=cfg.metadata.name))


def mirrored(image: str, mirror: str | None) -> str:
    """registry.k8s.io/sig-storage/csi-attacher:v4 -> MIRROR/sig-storage/csi-attacher:v4"""
    if not mirror:
        return image
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    return f"{mirror.rstrip('/')}/{path}"


def images_for(cfg, bom) -> dict[str, str]:
    return {k: mirrored(v, cfg.spec.registryMirror) for k, v in bom.images.items()}


def render(addon: Addon, cfg, bom, *, with_secrets: bool = False, existing=None) -> RenderedAddon:
    env = _env()
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
    digest = _sha256(yaml.safe_dump_all(objects, sort_keys=True), 16)
    for obj in objects:
        obj["metadata"].setdefault("annotations", {})[HASH_ANNOTATION] = digest
    out = RenderedAddon(addon, objects)
    if with_secrets:
        from ccp.addon_secrets import build

        out.secret_objects = [_label(s, addon.name) for name in addon.secrets for s in build(name, cfg, addon, existing)]
    return out


def _label(obj: dict, addon: str) -> dict:
    meta = obj.setdefault("metadata", {})
    meta["labels"] = {**(meta.get("labels") or {}), MANAGED_BY: "ccp", ADDON_LABEL: addon}
    return obj


def enabled_addons(cfg, only: list[str] | None = None) -> list[Addon]:
    chosen = order(discover(), only)
    return [a for a in chosen if is_enabled(a, cfg)]


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
