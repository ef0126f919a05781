"""ccp diagnose's host section over real SSH: the facts script runs for real (on this machine, through
ExecServers on loopback addresses), every node at once; an unreachable node is a failing finding,
not a crash, and the other nodes' facts still arrive."""

from __future__ import annotations

import json

from tests.conftest import example_data, run_ccp, write_config
from tests.ssh.servers import ExecServer, free_port


def test_host_facts_over_ssh_and_an_unreachable_node(tmp_path, client_key):
    port = free_port()
    servers = [ExecServer(client_key.with_suffix(".pub"), port=port, host=h).start() for h in ("127.0.1.31", "127.0.1.41")]
    try:
        data = example_data()
        spec = data["spec"]
        spec["provisioner"] = "static"
        del spec["vsphere"]
        spec["addons"]["storage"]["provider"] = "local-path"
        spec["nodes"]["network"] = {"cidr": "127.0.1.0/24", "gateway": "127.0.1.1", "dns": ["127.0.1.2"]}
        spec["loadBalancer"] = {"vip": "127.0.1.100", "nginx": {"count": 0}}
        spec["hosts"] = [{"address": "127.0.1.31", "role": "control-plane"}, {"address": "127.0.1.41", "role": "worker"},
                         {"address": "127.0.1.99", "role": "worker"}]
        spec["ssh"] = {"user": "root", "privateKeyFile": str(client_key), "port": port}
        path = write_config(tmp_path / "c.yaml", data)
        assert run_ccp("install", "--config", path, "--yes", "--until", "provision").code == 0
        r = run_ccp("diagnose", "--config", path, "--only", "hosts", "--output", "json", "--bundle", tmp_path / "b.tar.gz")
        assert r.code == 9, r.text
        found = json.loads(r.out)["findings"]
        unreachable = [f for f in found if f["check"] == "reachable"]
        assert len(unreachable) == 1 and unreachable[0]["severity"] == "fail"
        assert "demo-worker-2" in unreachable[0]["what"] and "127.0.1.99" in unreachable[0]["evidence"][0]
        clock = next(f for f in found if f["check"] == "clock-offset")
        assert clock["severity"] == "ok" and "between nodes" in clock["what"]    # same machine: the same clock
        assert all(any("df -P" in c for c in s.commands) for s in servers), [s.commands for s in servers]
        import tarfile

        with tarfile.open(tmp_path / "b.tar.gz") as tar:
            names = {m.name.split("/", 1)[1] for m in tar.getmembers()}
        assert {"hosts/demo-cp-1.txt", "hosts/demo-worker-1.txt", "ccp/journal.jsonl", "findings.txt"} <= names
    finally:
        for s in servers:
            s.stop()
