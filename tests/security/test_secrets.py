"""A planted vCenter password must appear in no console output, log, journal, state or rendered
file, whatever the command and however it ends (success, config error, internal error, --debug)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ccp_subprocess, example_data, write_config

PLANTED = "Planted-S3cret-zq81"


def _scan(root: Path) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and PLANTED.encode() in p.read_bytes():
            hits.append(str(p))
    return hits


@pytest.mark.parametrize("source", ["env", "file", "literal"])
def test_planted_password_leaks_nowhere(tmp_path, source):
    data = example_data()
    env = {"VSPHERE_PASSWORD": PLANTED}
    if source == "file":
        (tmp_path / "pw.txt").write_text(PLANTED + "\n")
        data["spec"]["vsphere"]["password"] = {"fromFile": "pw.txt"}
        env = {"VSPHERE_PASSWORD": ""}
    elif source == "literal":
        data["spec"]["vsphere"]["password"] = PLANTED
    cfg = write_config(tmp_path / "cluster.yaml", data)
    state = tmp_path / "state"
    outputs = []
    commands = [
        ["config", "validate", "--config", cfg],
        ["config", "validate", "--config", cfg, "--output", "json"],
        ["plan", "--config", cfg],
        ["plan", "--config", cfg, "--output", "json"],
        ["render", "--config", cfg, "--out", tmp_path / "out"],
        ["--debug", "install", "--config", cfg, "--yes", "--until", "render"],
        ["install", "--config", cfg, "--yes", "--until", "render"],
        ["phases", "--config", cfg, "--output", "json"],
    ]
    for args in commands:
        proc = ccp_subprocess("--state-dir", state, *args, env=env)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout + proc.stderr)

    # A failure with --debug prints a traceback: it must not carry the secret either.
    (state / "rendered").rename(tmp_path / "moved")
    (state / "rendered").write_text("not a directory")
    (state / "cluster.json").unlink()
    proc = ccp_subprocess("--state-dir", state, "--debug", "install", "--config", cfg, "--yes", "--until", "render", env=env)
    assert proc.returncode == 70 and "Traceback" in proc.stderr
    outputs.append(proc.stdout + proc.stderr)

    for text in outputs:
        assert PLANTED not in text
    assert _scan(state) == []
    assert _scan(tmp_path / "out") == []
    assert _scan(tmp_path / "moved") == []
    assert list((state / "logs").glob("*.log")), "runs leave logs"


def test_secret_in_an_exception_message_is_masked(tmp_path):
    """Defence in depth: even if code formats a secret into an error, the console masks it."""
    from ccp import redact
    from ccp.errors import RemoteError
    from tests.conftest import run_ccp

    redact.register(PLANTED)
    import ccp.cli

    @ccp.cli.app.command("leaky-test-command", hidden=True)
    def leaky() -> None:
        raise RemoteError(f"login failed with password {PLANTED}", "check it")

    try:
        r = run_ccp("leaky-test-command")
    finally:
        ccp.cli.app.registered_commands = [c for c in ccp.cli.app.registered_commands if c.name != "leaky-test-command"]
    assert r.code == 5
    assert PLANTED not in r.text and "********" in r.err


def test_terraform_gets_the_password_from_the_environment_only(tmp_path, monkeypatch):
    from ccp import render
    from ccp.config.load import load

    monkeypatch.setenv("VSPHERE_PASSWORD", PLANTED)
    loaded = load(write_config(tmp_path / "c.yaml", example_data()))
    out = render.render_all(loaded)
    assert all(PLANTED not in text for text in out.files.values())
    assert render.terraform_env(loaded)["TF_VAR_vsphere_password"] == PLANTED
