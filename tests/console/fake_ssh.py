"""A stand-in for the OpenSSH client, for tunnel tests; never contacts a host.

Installed as ``ssh`` on PATH by ``install_fake_ssh``. It records its
arguments (one JSON line per start in ``$FAKE_SSH_LOG``), then serves the
``-L 127.0.0.1:LOCAL:127.0.0.1:REMOTE`` forward by relaying connections on
loopback to 127.0.0.1:REMOTE, as if the far host were this machine. With
``$FAKE_SSH_FAIL`` set it prints that text to stderr and exits 255, the
way ssh does when it cannot log in.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path


def install_fake_ssh(directory: Path) -> Path:
    """Write an executable ``ssh`` into ``directory``; return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "ssh"
    script.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return directory


async def _relay(reader, writer) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def _serve(local_port: int, remote_port: int) -> None:
    async def forward(client_reader, client_writer) -> None:
        try:
            remote_reader, remote_writer = await asyncio.open_connection(
                "127.0.0.1", remote_port
            )
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _relay(client_reader, remote_writer), _relay(remote_reader, client_writer)
        )

    server = await asyncio.start_server(forward, "127.0.0.1", local_port)
    async with server:
        await server.serve_forever()


def main(arguments: list[str]) -> int:
    log = os.environ.get("FAKE_SSH_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "args": arguments}) + "\n")
    failure = os.environ.get("FAKE_SSH_FAIL")
    if failure:
        print(failure, file=sys.stderr, flush=True)
        return 255
    spec = arguments[arguments.index("-L") + 1]
    _bind, local_port, _host, remote_port = spec.split(":")
    asyncio.run(_serve(int(local_port), int(remote_port)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
