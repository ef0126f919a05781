from __future__ import annotations

import subprocess

import pytest

from tests.ssh.fake_cluster import ADDR, FakeCluster, static_config
from tests.ssh.servers import ExecServer, free_port


@pytest.fixture
def client_key(tmp_path):
    key = tmp_path / "keys" / "id_ed25519"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key), "-C", "ccp-test"], check=True)
    return key


@pytest.fixture
def exec_server(client_key):
    server = ExecServer(client_key.with_suffix(".pub")).start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path, client_key):
    def make(**kw):
        port = free_port()
        fc = FakeCluster(list(ADDR), ADDR, port, client_key.with_suffix(".pub"), tmp_path / "chroots", **kw).start()
        made.append(fc)
        return fc, static_config(tmp_path, client_key, port)
    made = []
    yield make
    for fc in made:
        fc.stop()
