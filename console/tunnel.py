"""Local port forwards through the system OpenSSH client for ``ssh://`` agents.

The console runs ``ssh -N -L 127.0.0.1:LOCAL:127.0.0.1:AGENT_PORT USER@HOST``
so the user's own keys, ``~/.ssh/config`` and known_hosts apply, then talks
plain HTTP to the local end. ``BatchMode=yes`` makes ssh fail instead of
prompting, because the console owns the terminal. ``ExitOnForwardFailure``
makes ssh exit when the local port is taken, instead of running without a
forward. When the ssh process exits, the next request starts a new one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import socket
import time

from console.config import SshTarget
from console.errors import TunnelError

logger = logging.getLogger(__name__)

OPEN_TIMEOUT_SECONDS = 10.0
# ssh sends a keepalive after this many idle seconds and gives up after
# SERVER_ALIVE_COUNT unanswered ones, so a dead link ends the process and
# the next request reopens the tunnel.
SERVER_ALIVE_INTERVAL_SECONDS = 15
SERVER_ALIVE_COUNT = 3
STOP_TIMEOUT_SECONDS = 3.0
_STDERR_LINES_KEPT = 20


def ssh_arguments(target: SshTarget, local_port: int) -> list[str]:
    """Return the ssh command line (without the executable) for one tunnel."""
    arguments = [
        "-N",
        "-L",
        f"127.0.0.1:{local_port}:127.0.0.1:{target.agent_port}",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ServerAliveInterval={SERVER_ALIVE_INTERVAL_SECONDS}",
        "-o",
        f"ServerAliveCountMax={SERVER_ALIVE_COUNT}",
        "-o",
        "LogLevel=ERROR",
    ]
    if target.ssh_port is not None:
        arguments += ["-p", str(target.ssh_port)]
    destination = f"{target.user}@{target.host}" if target.user else target.host
    return [*arguments, "--", destination]


class SshTunnel:
    """One ssh process forwarding a free local port to an agent's port.

    Args:
        agent: the agent's name, for messages.
        target: the parsed ``ssh://`` URL.
        ssh_command: the ssh executable, looked up on ``PATH``.
        open_timeout_seconds: how long to wait for the local port to accept
            connections before giving up on one attempt.
    """

    def __init__(
        self,
        agent: str,
        target: SshTarget,
        ssh_command: str = "ssh",
        open_timeout_seconds: float = OPEN_TIMEOUT_SECONDS,
    ) -> None:
        self.agent = agent
        self.target = target
        self.ssh_command = ssh_command
        self.open_timeout_seconds = open_timeout_seconds
        self.local_port: int | None = None
        self.opened_count = 0
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_lines: collections.deque[str] = collections.deque(
            maxlen=_STDERR_LINES_KEPT
        )
        self._stderr_task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.is_open else None

    async def ensure_open(self) -> int:
        """Return the local port, starting ssh first when it is not running."""
        async with self._lock:
            if self.is_open and self.local_port is not None:
                return self.local_port
            if self._process is not None:
                logger.warning(
                    "ssh tunnel of agent %s exited with status %s; reopening it",
                    self.agent,
                    self._process.returncode,
                )
            return await self._open()

    async def _open(self) -> int:
        executable = shutil.which(self.ssh_command)
        if executable is None:
            raise TunnelError(
                self.agent,
                f"the ssh client {self.ssh_command!r} is not on PATH; install "
                "OpenSSH or use an http:// or https:// URL for this agent",
            )
        local_port = _free_local_port()
        await self._spawn(executable, local_port)
        await self._wait_until_listening(local_port)

        self.local_port = local_port
        self.opened_count += 1
        logger.info(
            "ssh tunnel of agent %s open: 127.0.0.1:%s -> %s:%s (pid %s)",
            self.agent,
            local_port,
            self.target.host,
            self.target.agent_port,
            self._process.pid,
        )
        return local_port

    async def _spawn(self, executable: str, local_port: int) -> None:
        self._stderr_lines.clear()
        # A new session keeps ssh off the console's terminal: it can neither
        # prompt there nor receive the terminal's signals.
        self._process = await asyncio.create_subprocess_exec(
            executable,
            *ssh_arguments(self.target, local_port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._process))

    async def _wait_until_listening(self, local_port: int) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.open_timeout_seconds
        while True:
            if process.returncode is not None:
                await self._finish_stderr()
                raise TunnelError(self.agent, self._exit_message(process.returncode))
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", local_port)
            except OSError:
                if time.monotonic() > deadline:
                    await self.close()
                    raise TunnelError(
                        self.agent,
                        f"ssh did not open the local port {local_port} within "
                        f"{self.open_timeout_seconds:.0f} s",
                    ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    async def _finish_stderr(self) -> None:
        # ssh's last words explain why it exited; give the reader a moment.
        if self._stderr_task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._stderr_task), 0.5)

    def _exit_message(self, returncode: int) -> str:
        detail = " ".join(self._stderr_lines).strip()
        return (
            f"ssh to {self.target.host} exited with status {returncode}"
            + (f": {detail}" if detail else "")
            + "; check that `ssh -o BatchMode=yes "
            + (f"{self.target.user}@" if self.target.user else "")
            + f"{self.target.host}` logs in without a prompt"
        )

    async def _drain_stderr(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                self._stderr_lines.append(text)
                logger.debug("ssh %s: %s", self.agent, text)

    async def close(self) -> None:
        """Stop the ssh process: SIGTERM, then SIGKILL after a short wait."""
        process, self._process = self._process, None
        self.local_port = None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
        if self._stderr_task is not None:
            self._stderr_task.cancel()
        logger.info("ssh tunnel of agent %s closed", self.agent)

    def kill_now(self) -> None:
        """Send SIGKILL without waiting; for exit paths that cannot await."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()


def _free_local_port() -> int:
    # The port may be taken between this check and ssh binding it; ssh then
    # exits (ExitOnForwardFailure) and the next request tries another port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
