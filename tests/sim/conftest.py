"""vcsim, VMware's vSphere simulator, built by hack/vcsim.sh: one fresh instance per test module.

Without the binary the sim tests are skipped locally (run `hack/vcsim.sh build`); under CI they fail,
because .ci/run must have built it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

VCSIM = Path(os.environ.get("CCP_VCSIM", ROOT / ".tools" / "bin" / "vcsim"))


@dataclass
class Vcsim:
    host: str
    port: int
    process: subprocess.Popen

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.server}/sdk"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vcsim(tmp_path_factory):
    if not VCSIM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{VCSIM} is missing: .ci/run must build it (hack/vcsim.sh build)")
        pytest.skip(f"vcsim not built ({VCSIM}); run hack/vcsim.sh build")
    port = _free_port()
    log = tmp_path_factory.mktemp("vcsim") / "vcsim.log"
    proc = subprocess.Popen([str(VCSIM), "-l", f"127.0.0.1:{port}", "-api-version", "8.0.3.0",
                             "-dc", "1", "-cluster", "1", "-host", "3", "-vm", "2"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"vcsim did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    yield Vcsim("127.0.0.1", port, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
