"""Read cluster.yaml into a ClusterConfig, or fail with every mistake as file:line:col.

ruamel.yaml (round-trip) keeps the position of every key and value, so pydantic's error
locations and our own cross-field problems both map back to where the user typed them.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ccp.errors import ConfigError

Loc = tuple[str | int, ...]


@dataclass
class Loaded:
    config: Any                      # ClusterConfig
    path: Path
    text: str
    warnings: list[str] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


# ------------------------------------------------------------------ YAML with positions

def _parse(text: str, display: str):
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        docs = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in str(exc).lower() or "found duplicate key" in problem:
            problem = problem.replace("\n", " ")
        raise ConfigError(f"{display} is not valid YAML",
                          "fix the YAML syntax at the position shown (indentation, quotes, colons)",
                          [f"{display}:{line}:{col}: {problem}"]) from None
    except Exception as exc:  # noqa: BLE001 - anything the YAML library raises on user input is a YAML problem
        # ruamel's constructors raise plain exceptions for some tagged values (`!!int text`); they
        # carry no position, so point at the document and quote the complaint.
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{display} is not valid YAML",
                          "fix the YAML; look for explicit tags (!!int, !!float ...) on values that do not fit them",
                          [f"{display}:1:1: (document): {first}"]) from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise ConfigError(f"{display} must hold exactly one YAML document (found {len(docs)})",
                          "write one Cluster document; `ccp config init` prints an example",
                          [f"{display}:1:1: (document): expected one mapping"])
    return docs[0]


def _plain(node: Any) -> Any:
    """ruamel's commented containers and scalar subclasses -> plain Python for pydantic."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(node, CommentedMap) or isinstance(node, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq) or isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    for t in (str, int, float):
        if isinstance(node, t):
            return t(node)
    return node


def _position(doc: Any, loc: Loc, *, key: bool) -> tuple[int, int]:
    """1-based line/column of ``loc`` in the document; the deepest existing node if part is missing.

    key=True points at the key (for unknown fields), otherwise at the value.
    """
    node = doc
    line, col = getattr(getattr(doc, "lc", None), "line", 0), getattr(getattr(doc, "lc", None), "col", 0)
    for i, part in enumerate(loc):
        lc = getattr(node, "lc", None)
        last = i == len(loc) - 1
        try:
            if isinstance(node, dict) and part in node:
                line, col = lc.key(part) if (key and last) else lc.value(part)
                if key and i == len(loc) - 2 and isinstance(node[part], dict) and loc[-1] not in node[part]:
                    return lc.key(part)[0] + 1, lc.key(part)[1] + 1  # a missing field: point at its parent key
                node = node[part]
                continue
            if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                line, col = lc.item(part)
                node = node[part]
                continue
        except (AttributeError, KeyError, TypeError):
            pass
        break
    return line + 1, col + 1


# ------------------------------------------------------------------ pydantic errors, humanised

def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...], X | None, list[X] -> X (the model inside, if any)."""
    from pydantic import BaseModel

    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (list, typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            tp = models[0] if models else args[0]
        else:
            return tp


def _model_fields_at(loc: Loc) -> list[str]:
    """Field names of the model that sits at ``loc`` (for 'unknown field' suggestions)."""
    from pydantic import BaseModel

    from ccp.config.model import ClusterConfig

    tp: Any = ClusterConfig
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _humanise(err: dict) -> tuple[Loc, str, str, bool]:
    """-> (loc, message, hint, points_at_key)"""
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    msg = err["msg"]
    if kind == "extra_forbidden":
        name = str(loc[-1])
        valid = _model_fields_at(loc[:-1])
        close = difflib.get_close_matches(name, valid, n=1)
        hint = (f"did you mean {close[0]!r}? " if close else "") + (f"valid fields here: {', '.join(valid)}" if valid else "remove it")
        return loc, f"unknown field {name!r}", hint, True
    if kind == "missing":
        return loc, f"required field {str(loc[-1])!r} is missing", "add it; `ccp config init` prints a full example", True
    if kind.startswith("value_error"):
        # Our validators write "what is wrong||what to do".
        msg, _, hint = msg.removeprefix("Value error, ").partition("||")
        return loc, msg, hint, False
    if kind == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        msg = f"{err.get('input')!r} does not have the expected form ({pattern})"
    hint = {
        "literal_error": "use one of the values listed",
        "int_parsing": "write a whole number",
        "int_type": "write a whole number",
        "bool_type": "write true or false",
        "bool_parsing": "write true or false",
        "string_type": "write a string (quote it if YAML reads it as something else)",
        "list_type": "write a YAML list ( - item )",
        "model_type": "write a mapping ( key: value )",
        "dict_type": "write a mapping ( key: value )",
        "ip_v4_address": "write an IPv4 address such as 10.0.0.1",
        "ip_v4_network": "write a CIDR such as 10.0.0.0/24",
        "greater_than_equal": "use a larger value",
        "less_than_equal": "use a smaller value",
    }.get(kind, "fix the value")
    return loc, msg, hint, False


def _detail(display: str, doc: Any, loc: Loc, message: str, hint: str, at_key: bool, prefix: str = "") -> str:
    line, col = _position(doc, loc, key=at_key)
    text = f"{display}:{line}:{col}: {prefix}{format_loc(loc)}: {message}"
    return text + (f"\n    -> {hint}" if hint else "")


def _secret_paths(obj: Any, loc: Loc = ()):
    from pydantic import BaseModel

    from ccp.config.model import Secret

    if isinstance(obj, Secret):
        yield loc, obj
    elif isinstance(obj, BaseModel):
        for name in type(obj).model_fields:
            yield from _secret_paths(getattr(obj, name), loc + (name,))
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _secret_paths(item, loc + (i,))


# ------------------------------------------------------------------ entry point

def load(path: str | os.PathLike, env: dict[str, str] | None = None, *, defer_secrets: bool = False) -> Loaded:
    """Load and check cluster.yaml. ``defer_secrets``: a secret that cannot be resolved yet (its
    variable unset) is an error only when its value is used, not now (for read-only commands)."""
    from pydantic import ValidationError

    from ccp.config import semantics
    from ccp.config.model import ClusterConfig

    p = Path(path)
    display = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {display} does not exist",
                          "pass the right path with --config, or create one with `ccp config init > cluster.yaml`") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {display} is a directory", "pass the cluster.yaml file itself with --config") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {display} cannot be read: {exc}", "check the file's permissions and encoding (UTF-8)") from None

    doc = _parse(text, display)
    if not isinstance(doc, dict):
        raise ConfigError(f"{display} does not hold a mapping at the top level",
                          "start the file with apiVersion: ccp.io/v1alpha1 and kind: Cluster",
                          [f"{display}:1:1: (document): expected a mapping, found {type(_plain(doc)).__name__}"])

    context = {"env": os.environ if env is None else env, "base_dir": str(p.resolve().parent),
               "defer_secrets": defer_secrets}
    data = _plain(doc)
    try:
        cfg = ClusterConfig.model_validate(data, context=context)
    except ValidationError as exc:
        errs = exc.errors(include_url=False)
        details = [_detail(display, doc, *_humanise(e)) for e in errs]
        # Unknown keys are the commonest slip; without them the rest may still validate, and then
        # the cross-field problems can be reported in the same pass.
        if all(e["type"] == "extra_forbidden" for e in errs):
            for e in errs:
                _drop(data, tuple(e["loc"]))
            try:
                partial = ClusterConfig.model_validate(data, context=context)
                details += [_detail(display, doc, pr.path, pr.message, pr.hint, False)
                            for pr in semantics.check(partial) if not pr.warning]
            except ValidationError:
                pass
        raise ConfigError(_count(display, len(details)),
                          f"fix the fields above, then run `ccp config validate --config {display}`",
                          details) from None

    problems = semantics.check(cfg)
    errors = [pr for pr in problems if not pr.warning]
    warnings = [_detail(display, doc, pr.path, pr.message, pr.hint, False, "warning: ") for pr in problems if pr.warning]
    for loc, secret in _secret_paths(cfg):
        if secret.source == "literal":
            warnings.append(_detail(display, doc, loc, "a literal secret is written in the config file",
                                    "use {fromEnv: NAME} or {fromFile: PATH}", False, "warning: "))
    key = cfg.spec.ssh.private_key_path(p.resolve().parent)
    if not key.exists():
        warnings.append(_detail(display, doc, ("spec", "ssh", "privateKeyFile"),
                                f"{key} does not exist yet", "ccp needs it from the hosts phases on", False, "warning: "))
    if errors:
        raise ConfigError(_count(display, len(errors)),
                          f"fix the fields above, then run `ccp config validate --config {display}`",
                          [_detail(display, doc, pr.path, pr.message, pr.hint, False) for pr in errors])
    return Loaded(config=cfg, path=p, text=text, warnings=warnings)


def _drop(data: Any, loc: Loc) -> None:
    node = data
    for part in loc[:-1]:
        node = node[part]
    node.pop(loc[-1], None)


def _count(display: str, n: int) -> str:
    return f"{display} has {n} error{'s' if n != 1 else ''}"
