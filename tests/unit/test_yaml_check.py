"""yaml_check.any_document answers as loading every document with the safe loader does: the same
truth, the same error (type and message), for the files ccp renders and for YAML made to fail."""

from __future__ import annotations

import random

import pytest
import yaml

from ccp import yaml_check

CASES = ["", "---\n", "# a comment\n", "a: 1", "[]", "{}", "false", "0", "''", "x", "- a\n- b", "{a: 1, a: 2}",
         "a: [1, 2.5, .inf, 0x1F]", "a: 0b_", "a: 0x_", "a: ._", "1_: x", "a: 2024-02-30", "a: 2024-02-03",
         "a: !!int abc", "a: !!float abc", "a: !!bool maybe", "a: !!bool yes", "a: !!null foo", "a: !!str 5",
         "!foo x", "a: !foo x", "a: !!python/object:os.system x", "!!map foo", "!!str [a]", "? [a]\n: b",
         "? {a: 1}\n: b", "? !!timestamp foo\n: v", "base: &b {x: 1}\nd:\n  <<: *b\n  y: 2", "d:\n  <<: 5", "= : 1",
         "&a [*a]", "&a {k: *a}", "a: *nope", "a: [", "a: b: c", "a: 'open", "\t", "--- {}\n--- a: 1", "--- {}\n--- {}",
         "--- a: 1\n--- a: !!int x", "--- !!str\n--- null\n--- 0", "x: 1\n...\n--- y", "a: !!binary aGVsbG8=",
         "a: !!binary '%%'", "- !!set {a, b}", "- !!omap [a: 1]", "a:\n  - {b: [c, {d: e}]}\n  - ~\n  - Yes\n  - OFF"]


def loaded(text: str) -> tuple:
    """What render's check did before: every document built, then any() of them."""
    try:
        return "ok", any(list(yaml.load_all(text, Loader=yaml_check._LOADER)))
    except Exception as exc:
        return "error", type(exc).__name__, str(exc)


def checked(text: str) -> tuple:
    try:
        return "ok", yaml_check.any_document(text)
    except Exception as exc:
        return "error", type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", CASES)
def test_the_same_answer_as_loading(text):
    assert checked(text) == loaded(text)


def test_the_same_answer_for_rendered_files_and_their_mutants(example_config):
    from ccp import render
    from ccp.config.load import load

    files = [t for name, t in render.render_all(load(example_config)).files.items()
             if name.endswith((".yaml", "user-data", "meta-data", "network-config"))]
    assert len(files) > 20
    pieces = list(":-[]{}&*!|>'\"#?,\n ._~") + ["!!int ", "!!str ", "&a ", "*a ", "<<: ", "2024-13-01", "0b_", "? ", "yes"]
    rnd, failing = random.Random(19), 0
    for text in files:
        assert checked(text) == loaded(text) == ("ok", True)
    for _ in range(1500):
        text = rnd.choice(files)
        for _ in range(rnd.randint(1, 3)):
            i = rnd.randrange(len(text) + 1)
            text = text[:i] + rnd.choice(pieces) + text[i + rnd.choice((0, 0, 1, 5)):]
        expected = loaded(text)
        failing += expected[0] == "error"
        assert checked(text) == expected, text
    assert failing > 200   # the mutants reach the loader's errors, not only harmless text
