"""spec.local.nat's rules on a host without iptables: every ccp destroy asks to remove them, so a missing
iptables must mean "nothing to remove", and asking to add them must say what to install — never a traceback."""

from __future__ import annotations

import pytest

from ccp.errors import InfrastructureError
from ccp.providers import local_nat


def test_a_host_without_iptables_removes_nothing_and_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))   # no iptables on it
    forwarding = tmp_path / "ip_forward"
    forwarding.write_text("1\n")
    monkeypatch.setattr(local_nat, "FORWARDING", forwarding)
    assert local_nat.remove("ccp-x") == [] and local_nat.present("ccp-x") == []
    with pytest.raises(InfrastructureError) as info:
        local_nat.ensure("ccp-x", "10.9.0.0/24")
    assert "iptables: command not found" in info.value.message and "apt-get install iptables" in info.value.resolution
