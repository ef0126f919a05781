"""The add-ons there are: discover addons/<name>/addon.yaml, order them by depends_on, and decide
which are enabled for a cluster (each addon.yaml's `enabled` is a jinja expression over the spec)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

from ccp import resources
from ccp.errors import ConfigError, InternalError
from ccp.templating import environment


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


def is_enabled(addon: Addon, cfg) -> bool:
    return bool(environment().compile_expression(addon.enabled)(spec=cfg.spec, cluster=cfg.metadata.name))


def enabled_addons(cfg, only: list[str] | None = None) -> list[Addon]:
    chosen = order(discover(), only)
    return [a for a in chosen if is_enabled(a, cfg)]
