"""Option values are coerced without pydantic (bench/cli_startup.py measures the start), and that
changes nothing a user sees: the values and their errors are typer's own."""

from __future__ import annotations

from pathlib import Path

import typer


def _params(root=None):
    """(command name, click command, parameter) for every option of every ccp command, --help too."""
    from ccp.cli import app

    def walk(cmd, name):
        for p in cmd.get_params(cmd.context_class(cmd, info_name=name)):
            yield name, cmd, p
        for sub_name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, sub_name)

    return list(walk(root or typer.main.get_command(app), "ccp"))


def _samples(param) -> list:
    ann = param.type_descriptor.annotation
    common = [None, param.default if not callable(param.default) else None, "", "x", "-"]
    if isinstance(ann, type) and issubclass(ann, __import__("enum").Enum):
        return common + [m for m in ann] + [m.value for m in ann] + [m.value.upper() for m in ann]
    if ann is int:
        return common + [0, 7, -3, "5", " 5", "1_0", True, 2.0]
    if ann is Path:
        return common + [".", "/", "/nonexistent/file", Path("a/b"), str(Path(__file__)), 3]
    return common + [("a", "b,c"), ["x"], [], (), 1, b"bytes"]


def _outcome(runtime, value, param, ctx):
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
        return "ok", type(got), got
    except Exception as exc:  # the message a user would read
        return "error", type(exc), getattr(exc, "format_message", lambda: str(exc))()


def test_cheap_coercion_gives_what_typer_gives_for_every_option():
    from typer._coercion import build_runtime_param

    from ccp.cli import coercion

    checked = 0
    for name, cmd, param in _params():
        ctx = cmd.context_class(cmd, info_name=name)
        cheap = coercion.CheapRuntimeParam(parameter_info=param.type_descriptor.parameter_info,
                                           annotation=param.type_descriptor.annotation, descriptor=param.type_descriptor)
        typer_own = build_runtime_param(param.type_descriptor)
        for value in _samples(param):
            if param.multiple and isinstance(value, str):
                continue   # typer refuses before coercion, either way
            assert _outcome(cheap, value, param, ctx) == _outcome(typer_own, value, param, ctx), (name, param.name, value)
            checked += 1
    assert checked > 500


def test_cheap_coercion_is_installed_on_every_parameter():
    from ccp.cli import app, coercion

    root = typer.main.get_command(app)
    coercion.install(root)
    params = _params(root)
    assert len(params) > 100
    assert [(name, p.name) for name, _, p in params if not isinstance(p._runtime_param, coercion.CheapRuntimeParam)] == []


def test_a_bad_option_value_reads_as_before():
    from tests.conftest import run_ccp

    r = run_ccp("version", "--output", "yaml")
    assert r.code == 2 and "'yaml' is not one of 'text', 'json'" in r.err
