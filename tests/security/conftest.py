"""The fake cluster of recording SSH servers (tests/ssh), for the secrets ccp makes at install time."""

from tests.ssh.conftest import client_key, cluster  # noqa: F401  (fixtures)
