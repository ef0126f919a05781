"""`ccp` in a process of its own with the Kubernetes side of the upgrade faked (tests.ssh.upgrade_fakes),
for tests that send it a signal: python -m tests.ssh.upgrade_child WORK ccp-arguments..."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    from tests.ssh import upgrade_fakes

    upgrade_fakes.install(setattr, Path(sys.argv[1]))
    from ccp.cli import main

    main(sys.argv[2:])
