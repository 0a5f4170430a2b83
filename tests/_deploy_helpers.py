"""A real SSH server on 127.0.0.1 for the deploy tests (asyncssh, random port).

Its sessions run every command through a real shell on this machine, with HOME set
to a temp folder, and it serves SFTP on the local file system: the "device" is this
machine, reached over a genuine SSH connection (host key checked, public-key auth).
"""
from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class LoopbackSSH:
    port: int
    user: str
    identity: Path
    known_hosts: Path
    home: Path
    commands: list


def start_server(tmp: Path, user: str = "edge", env: Optional[dict] = None) -> tuple:
    """Start the server in a background thread; returns (LoopbackSSH, stop()).

    ``env``: extra environment variables for every command the "device" runs.
    """
    import asyncssh

    tmp = Path(tmp)
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    identity = tmp / "id_ed25519"
    identity.write_bytes(client_key.export_private_key())
    os.chmod(identity, 0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    commands: list = []
    env = dict(os.environ, HOME=str(home), **(env or {}))

    async def handle(process):
        commands.append(process.command)
        proc = await asyncio.create_subprocess_shell(
            process.command or "true", cwd=str(home), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        process.stdout.write(out.decode("utf-8", "replace"))
        process.stderr.write(err.decode("utf-8", "replace"))
        process.exit(proc.returncode)

    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box = {}

    async def boot():
        box["server"] = await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[host_key],
            authorized_client_keys=authorized, process_factory=handle, sftp_factory=True)

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(boot())
        ready.set()
        loop.run_forever()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    if not ready.wait(30):
        raise RuntimeError("loopback SSH server did not start")
    port = box["server"].sockets[0].getsockname()[1]
    known = tmp / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")

    def stop():
        async def close():
            box["server"].close()
            await box["server"].wait_closed()

        asyncio.run_coroutine_threadsafe(close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)

    return LoopbackSSH(port, user, identity, known, home, commands), stop
