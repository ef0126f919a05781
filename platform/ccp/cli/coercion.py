"""Option values without pydantic, for the kinds of options ccp has.

typer checks every option value with a pydantic TypeAdapter: a command with one non-flag option (even
left at its default) imported pydantic and built adapters, about 100 ms, more than a bare `import typer`
costs (bench/cli_startup.py). The kinds ccp's options use (str, Path, an Enum choice, an int without
bounds, a list of str) are coerced here with typer's own pure helpers. Anything else, and any value those
helpers refuse, goes to typer's own adapter: results and error messages stay typer's.

This leans on typer internals (typer._coercion); when they move, install() does nothing and options
are coerced by typer as before, only slower.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path
except ImportError:  # pragma: no cover - another typer: leave its coercion alone
    RuntimeParam = None

_TYPER_DECIDES = object()


def install(command) -> None:
    """Give the parameters of ``command`` and its subcommands the cheap coercion, when click asks for
    them (get_params also hands out the --help option, which click makes only then)."""
    if RuntimeParam is None:
        return
    own = command.get_params

    def get_params(ctx):
        params = own(ctx)
        for param in params:
            # only where typer's coercion is not built yet (typer builds it on first use)
            if getattr(param, "_runtime_param", _TYPER_DECIDES) is None and hasattr(param, "type_descriptor"):
                d = param.type_descriptor
                param._runtime_param = CheapRuntimeParam(parameter_info=d.parameter_info, annotation=d.annotation,
                                                         descriptor=d)
        return params

    command.get_params = get_params
    for sub in getattr(command, "commands", {}).values():
        install(sub)


def cheap_value(d, value: Any, param=None, ctx=None) -> Any:
    """``value`` coerced as typer would, or _TYPER_DECIDES when only typer's adapter can say."""
    info, ann = d.parameter_info, d.annotation
    if info.parser is not None or d.file_annotation is not None:
        return _TYPER_DECIDES
    if ann is str:
        return value if type(value) is str else _TYPER_DECIDES
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return coerce_cli_choice(value, choices=list(ann), case_sensitive=info.case_sensitive, ctx=ctx)
    if ann is int:   # with bounds (min/max/clamp) typer's adapter checks them
        return value if type(value) is int and info.min is None and info.max is None else _TYPER_DECIDES
    if ann is Path and info.path_type is None:
        # typer turns a str into Path(str) through pydantic first; its path checks are pure
        if type(value) is str:
            value = Path(value)
        if not isinstance(value, Path):
            return _TYPER_DECIDES
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)
    if ann == list[str] and isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
        return list(value)
    return _TYPER_DECIDES


if RuntimeParam is not None:
    @dataclass(frozen=True)
    class CheapRuntimeParam(RuntimeParam):
        """typer's RuntimeParam (its coerce() handles absent values) with the cheap path first."""

        descriptor: TypeDescriptor = None

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            try:
                out = cheap_value(self.descriptor, value, param, ctx)
            except Exception:  # refused: typer's adapter decides, and words the error its own way
                out = _TYPER_DECIDES
            if out is _TYPER_DECIDES:
                return self._typer._coerce_value(value, param=param, ctx=ctx)
            return out

        @cached_property
        def _typer(self):
            return build_runtime_param(self.descriptor)
