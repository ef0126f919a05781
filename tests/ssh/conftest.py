from __future__ import annotations

import subprocess

import pytest

from tests.ssh.servers import ExecServer


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
