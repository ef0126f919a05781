"""The SSH layer against real SSH servers: parallel commands with streamed, prefixed lines; timeouts;
non-zero exits; sudo; SFTP uploads; a bastion; host keys pinned and a changed key refused."""

from __future__ import annotations

import time

import pytest

from ccp import redact
from ccp.errors import RemoteError
from ccp.remote.hostkeys import HostKeys
from ccp.remote.ssh import SSH, Target
from tests.ssh.servers import ExecServer


def make_ssh(client_key, tmp_path, **kw):
    lines: list[tuple[str, str]] = []
    pins: list[tuple[str, str]] = []
    hk = HostKeys(tmp_path / "known_hosts", on_pin=lambda h, fp: pins.append((h, fp)))
    ssh = SSH("root", client_key, hk, on_line=lambda host, line: lines.append((host, line)), **kw)
    return ssh, lines, pins


def target(server, name="node-1"):
    return Target(name, "127.0.0.1", server.port)


def test_commands_stream_prefixed_lines_in_parallel(client_key, tmp_path, exec_server):
    ssh, lines, pins = make_ssh(client_key, tmp_path)
    try:
        targets = [Target(f"node-{i}", "127.0.0.1", exec_server.port) for i in range(4)]
        t0 = time.monotonic()
        res = ssh.call(ssh.each(targets, lambda t: ssh.run(t, f"echo hello from {t.name}; sleep 1; echo bye >&2")))
        elapsed = time.monotonic() - t0
        assert not res.failures and set(res.results) == {t.name for t in targets}
        assert elapsed < 3.5, "four 1-second commands ran in parallel"
        assert ("node-2", "hello from node-2") in lines and ("node-3", "bye") in lines
        assert res.results["node-1"].stdout == "hello from node-1" and res.results["node-1"].stderr == "bye"
        assert len(pins) == 1 and pins[0][1] == exec_server.fingerprint   # one host:port pinned once
    finally:
        ssh.close()


def test_nonzero_exit_carries_host_command_code_and_stderr_tail(client_key, tmp_path, exec_server):
    ssh, _, _ = make_ssh(client_key, tmp_path)
    try:
        with pytest.raises(RemoteError) as info:
            ssh.call(ssh.run(target(exec_server), "for i in $(seq 1 30); do echo line-$i >&2; done; exit 7"))
        err = info.value
        assert "node-1" in err.message and "exit" in err.message and "7" in err.message and "seq 1 30" in err.message
        assert err.details[-1] == "line-30" and len(err.details) == 20
        r = ssh.call(ssh.run(target(exec_server), "exit 3", check=False))
        assert r.exit_status == 3 and not r.ok
    finally:
        ssh.close()


def test_timeout(client_key, tmp_path, exec_server):
    ssh, _, _ = make_ssh(client_key, tmp_path)
    try:
        with pytest.raises(RemoteError) as info:
            ssh.call(ssh.run(target(exec_server), "echo started; sleep 30", timeout=1))
        assert "did not finish within 1s" in info.value.message
    finally:
        ssh.close()


def test_sudo_sftp_upload_and_secrets_via_stdin(client_key, tmp_path, exec_server):
    ssh, lines, _ = make_ssh(client_key, tmp_path)
    dest = tmp_path / "etc" / "ccp" / "conf.yaml"
    try:
        r = ssh.call(ssh.run(target(exec_server), "id -u", sudo=True))
        assert r.stdout == "0"
        assert "sudo -n" in exec_server.commands[-1]
        import glob
        before = set(glob.glob("/tmp/ccp-*"))
        ssh.call(ssh.upload(target(exec_server), {str(dest): ("a: 1\n", 0o640)}))
        assert dest.read_text() == "a: 1\n" and oct(dest.stat().st_mode & 0o777) == "0o640"
        assert set(glob.glob("/tmp/ccp-*")) == before, "the staging directory is removed"

        token = "abcdef.0123456789abcdef"
        r = ssh.call(ssh.run(target(exec_server), 'echo "token is $CCP_TOKEN"', env_secrets={"CCP_TOKEN": token}))
        assert r.stdout == f"token is {redact.MASK}" or token in r.stdout
        assert all(token not in c for c in exec_server.commands), "secrets never travel on a command line"
        assert all(token not in line for _, line in lines), "secrets never reach the log"
    finally:
        ssh.close()
        redact.clear()


def test_bastion(client_key, tmp_path, exec_server):
    bastion = ExecServer(client_key.with_suffix(".pub")).start()
    try:
        ssh, _, pins = make_ssh(client_key, tmp_path, bastion=Target("bastion", "127.0.0.1", bastion.port))
        try:
            r = ssh.call(ssh.run(target(exec_server), "echo through"))
            assert r.stdout == "through"
            assert bastion.forwarded == [("127.0.0.1", exec_server.port)]
            assert {fp for _, fp in pins} == {bastion.fingerprint, exec_server.fingerprint}
        finally:
            ssh.close()
    finally:
        bastion.stop()


def test_changed_host_key_is_refused(client_key, tmp_path, exec_server):
    ssh, _, pins = make_ssh(client_key, tmp_path)
    ssh.call(ssh.run(target(exec_server), "true"))
    ssh.close()
    port = exec_server.port
    exec_server.stop()
    impostor = ExecServer(client_key.with_suffix(".pub"), port=port).start()
    try:
        ssh2, _, _ = make_ssh(client_key, tmp_path)
        with pytest.raises(RemoteError) as info:
            ssh2.call(ssh2.run(target(impostor), "echo should not run"))
        assert "host key changed" in info.value.message
        assert impostor.fingerprint in info.value.details[0] and pins[0][1] in info.value.details[0]
        assert impostor.commands == []
        ssh2.close()
    finally:
        impostor.start = None
        impostor.stop()
        exec_server.start()  # the fixture stops it again


def test_unreachable_host_and_bad_key(client_key, tmp_path, exec_server):
    ssh, _, _ = make_ssh(client_key, tmp_path, connect_timeout=5)
    try:
        with pytest.raises(RemoteError) as info:
            ssh.call(ssh.run(Target("gone", "127.0.0.1", 9), "true"))
        assert "cannot connect over SSH" in info.value.message
    finally:
        ssh.close()
    other = tmp_path / "other"
    import subprocess
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    ssh, _, _ = make_ssh(other, tmp_path)
    try:
        with pytest.raises(RemoteError) as info:
            ssh.call(ssh.run(target(exec_server), "true"))
        assert "was not let in" in info.value.message
    finally:
        ssh.close()


def test_a_pooled_connection_its_host_closed_is_made_again(client_key, tmp_path, exec_server):
    """Found on real nodes: `ccp node replace` reset the old machine over SSH, replaced it, then probed the new one
    through the old machine's pooled connection ("SSH connection closed"). The close is only read once the event loop
    runs again, so the pool hands the dead connection out: a channel that does not open is opened on a new one."""
    ssh, _, _ = make_ssh(client_key, tmp_path)
    try:
        assert ssh.call(ssh.run(target(exec_server), "echo before")).stdout == "before"
        exec_server.drop_connections()
        time.sleep(0.2)   # the close reaches this side's socket; ccp's loop does not run, as between two phases
        assert ssh.call(ssh.run(target(exec_server), "echo after")).stdout == "after"
        exec_server.drop_connections()
        time.sleep(0.2)
        dest = tmp_path / "uploaded"
        ssh.call(ssh.upload(target(exec_server), {str(dest): ("data", 0o600)}, sudo=False))
        assert dest.read_text() == "data"
    finally:
        ssh.close()


def test_a_connection_lost_while_a_command_runs_is_a_remote_error(client_key, tmp_path, exec_server):
    ssh, _, _ = make_ssh(client_key, tmp_path)
    try:
        t = target(exec_server)
        ssh.call(ssh.run(t, "true"))

        async def run_and_drop():
            import asyncio

            run = asyncio.ensure_future(ssh.run(t, "sleep 5"))
            await asyncio.sleep(0.5)
            exec_server.drop_connections()
            return await run
        with pytest.raises(RemoteError) as info:
            ssh.call(run_and_drop())
        assert "connection was lost while `sleep 5` ran" in info.value.message and info.value.resolution
    finally:
        ssh.close()
