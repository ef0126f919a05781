"""Hundreds of malformed configs: the loader and `ccp config validate` never show a traceback, and
every error carries file:line:col."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccp.config.load import load
from ccp.errors import ConfigError
from tests.conftest import EXAMPLES, example_data, run_ccp

BASE = example_data()
BASE_TEXT = (EXAMPLES / "cluster.yaml").read_text()
LOC = re.compile(r"^.+:\d+:\d+: ")


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(BASE) if p]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                    st.text(max_size=30), st.sampled_from(["", "0", "1.36", "10.10.0.0/33", "x" * 300, "~", "{}"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


def _copy(x):
    return yaml.safe_load(yaml.safe_dump(x))


@st.composite
def broken_data(draw):
    data = _copy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = data
        try:
            for part in path[:-1]:
                parent = parent[part]
            kind = draw(st.sampled_from(["delete", "replace", "add"]))
            if kind == "delete":
                del parent[path[-1]]
            elif kind == "replace":
                parent[path[-1]] = draw(values)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue
    return yaml.safe_dump(data, sort_keys=False)


@st.composite
def broken_text(draw):
    text = BASE_TEXT
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from([":", "- ", "\t", "{", "]", "'", '"', "&a", "*a", "!!int ", "\n  ", "? ", "%"]) | st.text(max_size=4))
        cut = draw(st.integers(0, 3))
        text = text[:pos] + junk + text[pos + cut:]
    return text


def _check(text: str) -> bool:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "cluster.yaml"
        path.write_text(text)
        try:
            load(path)
            ok = True
        except ConfigError as exc:
            assert exc.details, exc.message
            for detail in exc.details:
                assert LOC.match(detail.splitlines()[0]), detail
                assert detail.startswith(str(path)), detail
            ok = False
        result = run_ccp("config", "validate", "--config", path)
        assert "Traceback" not in result.text
        assert result.code == (0 if ok else 2), result.text
        return ok


@settings(max_examples=int(os.environ.get("CCP_FUZZ_EXAMPLES", 250)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(broken_data())
def test_malformed_structure_never_tracebacks(text):
    _check(text)


@settings(max_examples=int(os.environ.get("CCP_FUZZ_EXAMPLES", 150)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(broken_text())
def test_malformed_yaml_never_tracebacks(text):
    _check(text)
