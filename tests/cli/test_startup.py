"""The read commands start without the heavy libraries (bench/cli_startup.py measures the time), and
what makes that so changes nothing a user sees: option values, their errors, the printed lines."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

HEAVY = ("pydantic", "jinja2", "lightkube", "asyncssh", "pyVmomi", "ruamel", "rich", "httpx")
LOADED = """
import contextlib, io, json, sys
from ccp.cli import run
with contextlib.redirect_stdout(io.StringIO()):
    code = run(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.stdin.read())))
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize("args", [["version"], ["version", "-o", "json"], ["--help"], ["phases", "--help"],
                                  ["addons", "list"], ["addons", "list", "-o", "json"]])
def test_read_commands_load_no_heavy_library(args):
    r = subprocess.run([sys.executable, "-c", LOADED, *args], input=json.dumps(HEAVY), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"code": 0, "heavy": []}


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


@pytest.mark.parametrize("text", ["ccp 0.1.0 (Python 3.11.7)", "Kubernetes: 1.37, 1.36 (default 1.37.1)", "a  ", "",
                                  "x" * 300, "wide 漢字", "a :smile: b", "a [bold]b[/]", "tab\there", "http://h:1/x"])
def test_a_plain_line_is_what_rich_prints(text):
    from ccp import ui

    rich, plain = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(rich):
        ui.out().print(ui.escape(text))
    with contextlib.redirect_stdout(plain):
        ui.line(text)
    assert plain.getvalue() == rich.getvalue()


def test_libyaml_reads_the_bom_and_addons_as_the_python_loader_does():
    from ccp import resources
    from ccp.config import versions

    if not hasattr(yaml, "CSafeLoader"):
        pytest.skip("PyYAML without libyaml: ccp reads with the Python loader")
    files = [versions._BOM_FILE, *sorted(resources.addons_dir().glob("*/addon.yaml"))]
    for f in files:
        assert yaml.load(f.read_text(), Loader=yaml.CSafeLoader) == yaml.safe_load(f.read_text()), f


def test_command_modules_do_not_defer_their_annotations():
    """typer evaluates string annotations of every command at each start (see ccp.cli's docstring)."""
    cli = Path(__file__).resolve().parents[2] / "platform" / "ccp" / "cli"
    deferred = [p.name for p in [cli / "__init__.py", *sorted(cli.glob("*_cmd.py"))]
                if "from __future__ import annotations" in p.read_text().splitlines()]
    assert deferred == []
