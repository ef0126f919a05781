"""Validate Kubernetes objects against the JSON schemas bundled with kubernetes-validate, strict
(unknown fields are errors), reporting every error — kubernetes-validate's own validate() stops at
the first, so jsonschema is driven directly over its schema files."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7


@cache
def _dir(version: str) -> Path:
    import kubernetes_validate

    d = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{version}.0-local-strict"
    if not d.is_dir():
        raise LookupError(f"kubernetes-validate has no schemas for {version}")
    return d


@cache
def _registry(version: str) -> Registry:
    base = _dir(version)

    def retrieve(uri: str) -> Resource:
        return Resource.from_contents(json.loads((base / uri.split("#")[0].rsplit("/", 1)[-1]).read_text()),
                                      default_specification=DRAFT7)

    return Registry(retrieve=retrieve)


def schema_file(api_version: str, kind: str) -> str:
    group, _, ver = api_version.rpartition("/")
    return f"{kind.lower()}-{group.split('.')[0]}-{ver}.json" if group else f"{kind.lower()}-{ver}.json"


def errors(obj: dict, version: str) -> list[str]:
    name = schema_file(obj["apiVersion"], obj["kind"])
    path = _dir(version) / name
    if not path.exists():
        return [f"{obj['kind']} {obj['apiVersion']}: no schema {name} for Kubernetes {version}"]
    schema = json.loads(path.read_text())
    schema["$id"] = name
    validator = jsonschema.Draft7Validator(schema, registry=_registry(version))
    where = f"{obj['kind']}/{obj.get('metadata', {}).get('name')}"
    return [f"{where}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(obj)]
