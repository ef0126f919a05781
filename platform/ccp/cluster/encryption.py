"""The API servers' encryption configuration as data, and the safe way from one to another.

A configuration's *shape* says, per resource, its providers in order, by name only: ``{"secrets":
("secretbox:ccp-2", "secretbox:ccp-1", "identity")}`` — the first encrypts what is written, every one reads
what carries its prefix (k8s:enc:secretbox:v1:ccp-1:...), identity reads what was stored in plain text. A
resource not in the shape is stored in plain text; no configuration at all is the empty shape. Shapes hold no
secret, so they go into the journal and the plan; the keys themselves are filled in (``render``) only for an
upload.

Every change — a new key, encryption turned on or off, a resource added or dropped, another provider — goes
through the stages Kubernetes documents for key rotation (``transition``), each rolled to every control plane
one at a time:

  readers   every API server reads what any configuration, old or new, can write; each still writes as before
  writers   every API server writes as the new configuration says (all of them can read it by now)
  (rewrite  every object of a resource whose writer changed or whose reader goes is read and written again)
  final     the new configuration: what no object is stored with any more is gone

so an object written through one API server is always readable through every other, and nothing is dropped
while an object is still stored with it. Stages equal to the one before are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ccp import redact

IDENTITY = "identity"
KEYED = ("secretbox", "aescbc")
Shape = dict[str, tuple[str, ...]]


@dataclass
class Running:
    """An encryption configuration as a control plane holds it: its shape and {key name: secret}."""

    shape: Shape
    keys: dict[str, str] = field(default_factory=dict)


def parse(text: str | None) -> Running | None:
    """A node's EncryptionConfiguration (its keys registered for masking); the empty shape for no file; None if the
    text is not one ccp can read (another provider, a key name given twice with different secrets)."""
    if text is None or not text.strip():
        return Running({})
    try:
        doc = yaml.safe_load(text)
        if doc.get("kind") != "EncryptionConfiguration":
            return None
        shape, keys = {}, {}
        for entry in doc["resources"]:
            providers = []
            for provider in entry["providers"]:
                ((kind, conf),) = provider.items()
                if kind == IDENTITY:
                    providers.append(IDENTITY)
                    continue
                if kind not in KEYED:
                    return None
                for key in conf["keys"]:
                    redact.register(key["secret"])
                    if keys.setdefault(key["name"], key["secret"]) != key["secret"]:
                        return None
                    providers.append(f"{kind}:{key['name']}")
            for resource in entry["resources"]:
                shape[resource] = tuple(providers)
    except (yaml.YAMLError, KeyError, TypeError, AttributeError, ValueError):
        return None
    return Running(shape, keys)


def render(shape: Shape, keys: dict[str, str]) -> str:
    """The EncryptionConfiguration for ``shape`` with the keys filled in (for an upload only); resources with the
    same providers share one entry. A KeyError names a key that is not in ``keys``."""
    entries: list[tuple[list[str], tuple[str, ...]]] = []
    for resource, providers in shape.items():
        group = next((e for e in entries if e[1] == providers), None)
        if group:
            group[0].append(resource)
        else:
            entries.append(([resource], providers))
    resources = []
    for names, providers in entries:
        out: list[dict] = []
        for p in providers:
            if p == IDENTITY:
                out.append({IDENTITY: {}})
                continue
            kind, name = p.split(":", 1)
            if out and kind in out[-1]:   # keys of one provider side by side: one list
                out[-1][kind]["keys"].append({"name": name, "secret": keys[name]})
            else:
                out.append({kind: {"keys": [{"name": name, "secret": keys[name]}]}})
        resources.append({"resources": names, "providers": out})
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration", "resources": resources}
    return ("# Written by ccp: kube-apiserver --encryption-provider-config, the same on every control plane (0600).\n"
            "# The first provider encrypts what is written; the others read what was stored with them.\n"
            + yaml.safe_dump(doc, sort_keys=False))


def desired(security, key_name: str) -> Shape:
    """What cluster.yaml's spec.security.encryption asks for, with the cluster's key ``key_name``."""
    enc = security.encryption
    if not enc.enabled:
        return {}
    return {r: (f"{enc.provider}:{key_name}", IDENTITY) for r in enc.resources}


def writer(shape: Shape, resource: str) -> str:
    return shape[resource][0] if resource in shape else IDENTITY


def readers(shape: Shape, resource: str) -> tuple[str, ...]:
    return shape.get(resource, (IDENTITY,))


def key_names(shape: Shape) -> list[str]:
    return list(dict.fromkeys(p.split(":", 1)[1] for ps in shape.values() for p in ps if p != IDENTITY))


def _with_writer(first: str, others) -> tuple[str, ...]:
    rest = [p for p in dict.fromkeys(others) if p != first]
    return (first, *[p for p in rest if p != IDENTITY], *([IDENTITY] if IDENTITY in rest else []))


def merged(shapes: list[Shape], writer_of: Shape) -> Shape:
    """Every provider any of ``shapes`` has, each resource written as in ``writer_of``."""
    resources = list(dict.fromkeys(r for s in shapes for r in s))
    return {r: _with_writer(writer(writer_of, r), [p for s in shapes for p in readers(s, r)]) for r in resources}


@dataclass
class Transition:
    stages: list[tuple[str, Shape]]     # (readers | writers | final, shape), in order; equal neighbours left out
    rewrite: list[str]                  # resources to rewrite after the writers stage
    dropped: list[str]                  # providers the final stage drops ("secretbox:ccp-1")


def transition(current: list[Shape], target: Shape) -> Transition:
    """From the control planes' configurations (all the same, or not when a change was cut short) to ``target``."""
    first = current[0]
    readers_stage = merged([*current, target], first)
    resources = list(readers_stage)
    writers_stage = merged([*current, target], target)
    final = dict(target)
    rewrite = [r for r in resources if writer(first, r) != writer(target, r)
               or set(readers(writers_stage, r)) - set(readers(final, r))
               or any(writer(s, r) != writer(target, r) for s in current)]
    dropped = list(dict.fromkeys(p for r in resources for p in readers(writers_stage, r) if p not in readers(final, r)))
    stages: list[tuple[str, Shape]] = []
    last = first if all(same(s, first) for s in current) else None
    for name, shape in (("readers", readers_stage), ("writers", writers_stage), ("final", final)):
        if last is None or not same(shape, last):
            stages.append((name, _trim(shape)))
            last = shape
    return Transition(stages, rewrite, dropped)


def rotation(current: Shape, new_name: str) -> Transition:
    """A new key for every resource that is encrypted: written with it, the old keys dropped once nothing is
    stored with them (the documented rotation: added as second, made first, everything rewritten, old removed)."""
    target = {}
    for r, providers in current.items():
        kind = writer(current, r).split(":", 1)[0]
        if kind == IDENTITY:
            target[r] = providers          # not encrypted (on its way out): left as it is
            continue
        target[r] = (f"{kind}:{new_name}", *([IDENTITY] if IDENTITY in providers else []))
    return transition([current], target)


def _trim(shape: Shape) -> Shape:
    """A resource that only reads and writes plain text needs no entry."""
    return {r: ps for r, ps in shape.items() if ps != (IDENTITY,)}


def same(a: Shape, b: Shape) -> bool:
    return _trim(a) == _trim(b)


def describe(shape: Shape) -> str:
    """"secrets, configmaps: secretbox ccp-2 (then ccp-1, identity)" — for plans and messages; no secret."""
    if not _trim(shape):
        return "no encryption"
    groups: dict[tuple[str, ...], list[str]] = {}
    for r, ps in _trim(shape).items():
        groups.setdefault(ps, []).append(r)
    parts = []
    for ps, rs in groups.items():
        rest = f" (reads {', '.join(p.replace(':', ' ') for p in ps[1:])} too)" if ps[1:] else ""
        parts.append(f"{', '.join(rs)}: written with {ps[0].replace(':', ' ')}{rest}")
    return "; ".join(parts)
