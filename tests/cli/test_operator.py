"""What an operator meets first: help that teaches, --version, a vCenter that never answers, the
kubeconfig a command works on, read-only commands without secrets, private state directories."""

from __future__ import annotations

import json
import socket
import stat
import threading
import time

import pytest
import typer
import yaml

from tests.conftest import example_data, run_ccp, write_config


def _walk(cmd, path=("ccp",)):
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _walk(sub, path + (name,))


def test_every_option_has_help_and_no_summary_is_cut():
    from ccp.cli import app

    missing = [f"{' '.join(path)} {p.opts[0]}" for path, cmd in _walk(typer.main.get_command(app))
               for p in cmd.params if not getattr(p, "help", None) and p.name != "help"]
    assert missing == []
    for path, cmd in _walk(typer.main.get_command(app)):
        if getattr(cmd, "commands", None):
            r = run_ccp(*path[1:], "--help")
            listing = r.out.split("Options:", 1)[1]
            assert r.code == 0 and "..." not in listing and "…" not in listing, r.out


def test_top_level_help_is_in_the_order_of_use_and_version_flag():
    out = run_ccp("--help").out
    order = [out.index(f"\n  {name} ") for name in ("config", "plan", "preflight", "install", "phases", "destroy")]
    assert order == sorted(order)
    r = run_ccp("--version")
    from ccp import __version__

    assert r.code == 0 and r.out.strip() == f"ccp {__version__}"


@pytest.fixture
def silent_server():
    """Accepts TCP connections and never answers (a half-dead proxy or a hung vCenter)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held, stop = [], threading.Event()

    def loop():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_vcenter_that_never_answers_times_out_naming_the_address(tmp_path, silent_server):
    data = example_data()
    data["spec"]["provisioner"] = "native"
    data["spec"]["vsphere"].update(server=f"127.0.0.1:{silent_server}", insecure=True, timeoutSeconds=5)
    path = write_config(tmp_path / "c.yaml", data)
    t0 = time.monotonic()
    r = run_ccp("preflight", "--config", path)
    assert time.monotonic() - t0 < 20
    assert r.code == 3, r.text
    assert f"vCenter at 127.0.0.1:{silent_server} did not answer within 5s" in r.text
    assert "vsphere.timeoutSeconds" in r.text


def test_with_config_only_the_clusters_own_kubeconfig_is_used(tmp_path, monkeypatch):
    other = tmp_path / "other.kubeconfig"
    other.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "unrelated",
        "clusters": [{"name": "u", "cluster": {"server": "https://127.0.0.1:9"}}],
        "contexts": [{"name": "unrelated", "context": {"cluster": "u", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "planted-kube-token"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(other))
    path = write_config(tmp_path / "c.yaml", example_data())
    for args in (("addons", "apply"), ("addons", "status"), ("validate",)):
        r = run_ccp(*args, "--config", path)
        assert r.code == 2, r.text
        assert "has no kubeconfig of its own yet" in r.err and "--kubeconfig" in r.err
        assert "unrelated" not in r.text
    # explicitly given, it is used, and the command says which context and server it talks to
    r = run_ccp("addons", "status", "--config", path, "--kubeconfig", other)
    assert "context unrelated at https://127.0.0.1:9" in r.err
    assert "planted-kube-token" not in r.text


def test_phases_needs_no_password_and_shows_each_group_once(tmp_path, monkeypatch):
    path = write_config(tmp_path / "c.yaml", example_data())
    monkeypatch.delenv("VSPHERE_PASSWORD")
    r = run_ccp("phases", "--config", path)
    assert r.code == 0, r.text
    assert sum(1 for line in r.out.splitlines() if line.strip(" │├└─") == "kubeadm") == 1
    rows = json.loads(run_ccp("phases", "--config", path, "--output", "json").out)["phases"]
    assert {r["status"] for r in rows} == {"pending"}
    # a command that needs the password still says exactly what is missing
    r = run_ccp("preflight", "--config", path)
    assert r.code == 2 and "VSPHERE_PASSWORD" in r.err


def test_state_directories_are_private(tmp_path):
    path = write_config(tmp_path / "c.yaml", example_data())
    assert run_ccp("install", "--config", path, "--until", "render", "--yes").code == 0
    root = tmp_path / ".ccp"
    dirs = [root, *[p for p in root.rglob("*") if p.is_dir()]]
    assert len(dirs) > 5
    assert {oct(stat.S_IMODE(d.stat().st_mode)) for d in dirs} == {"0o700"}
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in root.rglob("*") if f.is_file()} == {"0o600"}


def test_config_init_writes_exactly_the_reference_example():
    from tests.conftest import EXAMPLES

    assert run_ccp("config", "init").out == (EXAMPLES / "cluster.yaml").read_text()


def test_a_bundle_that_cannot_be_written_is_refused_before_the_diagnosis(tmp_path):
    """Before: --bundle in a directory that cannot be made ran the whole diagnosis, then ended in an internal error."""
    (tmp_path / "file").write_text("")
    for where in ("/proc/ccp-nowhere/b.tar.gz", tmp_path / "file" / "b.tar.gz", tmp_path):
        r = run_ccp("diagnose", "--bundle", where, "--kubeconfig", tmp_path / "absent")
        assert r.code == 2 and "the support bundle cannot be written to" in r.err and "to fix: give --bundle" in r.err, r.text
        assert "internal error" not in r.err and "Traceback" not in r.err


def test_a_bundle_write_that_fails_is_an_error_that_says_so(tmp_path, monkeypatch):
    import os

    from ccp.diagnose import bundle
    from ccp.errors import ConfigError

    monkeypatch.setattr(os, "open", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(ConfigError) as info:
        bundle.write(tmp_path / "b.tar.gz", {"findings.txt": "x"})
    assert "No space left on device" in info.value.message and "room for it" in info.value.resolution
