"""Real SSH servers for the tests, built on asyncssh's server and run in a background thread.

ExecServer runs each command for real (a local shell), serves SFTP on the real filesystem and can
forward connections (a bastion). RecordingNodeFake is a fake node: it records every command and
answers from a small model of a node's state; it is named a fake because it is one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import asyncssh


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Loop:
    """One event loop in a daemon thread hosting every test server."""

    _instance = None

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    @classmethod
    def get(cls) -> "_Loop":
        if cls._instance is None:
            cls._instance = _Loop()
        return cls._instance

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


class SSHServerBase:
    def __init__(self, authorized_key: Path, host_key: asyncssh.SSHKey | None = None, port: int | None = None,
                 host: str = "127.0.0.1"):
        self.port = port or free_port()
        self.host = host
        self.host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
        self.authorized_key = authorized_key
        self.forwarded: list[tuple[str, int]] = []
        self.commands: list[str] = []
        self.connections: list = []
        self._server = None

    def _server_class(self):
        outer = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn):
                outer.connections.append(conn)

            def connection_requested(self, dest_host, dest_port, orig_host, orig_port):
                outer.forwarded.append((dest_host, dest_port))
                return True

        return Server

    async def handle(self, process: asyncssh.SSHServerProcess) -> None:
        raise NotImplementedError

    def start(self) -> "SSHServerBase":
        async def go():
            self._server = await asyncssh.create_server(
                self._server_class(), self.host, self.port, server_host_keys=[self.host_key],
                authorized_client_keys=str(self.authorized_key), process_factory=self.handle,
                sftp_factory=True, encoding=None)
        _Loop.get().run(go())
        return self

    def stop(self) -> None:
        async def go():
            self._server.close()
            await self._server.wait_closed()
        _Loop.get().run(go())

    def drop_connections(self) -> None:
        """Close every client connection from the server's side, as a host going away does."""
        async def go():
            for conn in self.connections:
                conn.close()
            self.connections.clear()
        _Loop.get().run(go())

    @property
    def fingerprint(self) -> str:
        return self.host_key.get_fingerprint("sha256")


class ExecServer(SSHServerBase):
    async def handle(self, process: asyncssh.SSHServerProcess) -> None:
        self.commands.append(process.command)
        proc = await asyncio.create_subprocess_shell(process.command, stdin=asyncio.subprocess.PIPE,
                                                     stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

        async def feed():
            while data := await process.stdin.read(65536):
                proc.stdin.write(data)
                await proc.stdin.drain()
            proc.stdin.close()

        async def drain(src, dst):
            while data := await src.read(65536):
                dst.write(data)

        try:
            await asyncio.gather(feed(), drain(proc.stdout, process.stdout), drain(proc.stderr, process.stderr))
            process.exit(await proc.wait())
        except (asyncssh.Error, ConnectionError, BrokenPipeError):  # the client went away (a timeout test)
            proc.kill()


class RecordingNodeFake(SSHServerBase):
    """Records commands; ``respond(command) -> (exit, stdout, stderr)`` decides the answers."""

    def __init__(self, name: str, authorized_key: Path, respond: Callable[[str, str], tuple[int, str, str]], **kw):
        super().__init__(authorized_key, **kw)
        self.name = name
        self.respond = respond
        self.stdin: list[str] = []

    async def handle(self, process: asyncssh.SSHServerProcess) -> None:
        self.commands.append(process.command)
        data = await process.stdin.read()
        self.stdin.append(data.decode() if isinstance(data, bytes) else data)
        code, out, err = self.respond(self.name, process.command)
        if out:
            process.stdout.write(out.encode())
        if err:
            process.stderr.write(err.encode())
        process.exit(code)
