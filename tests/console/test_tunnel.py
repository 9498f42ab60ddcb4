"""ssh:// agents: the port forward through the system ssh client, with a fake ssh."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from console_helpers import entry_for, wait_until
from fake_ssh import install_fake_ssh

from console.app import RigdeckApp
from console.client import AgentClient, AgentState
from console.config import AgentEntry, ssh_target
from console.errors import AgentRequestError
from console.tunnel import ssh_arguments

pytestmark = pytest.mark.slow


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake ssh first on PATH; return the file it logs its starts to."""
    directory = install_fake_ssh(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / "ssh.log"
    monkeypatch.setenv("FAKE_SSH_LOG", str(log))
    return log


def starts(log: Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def agent_port(agent) -> int:
    return int(agent.url.rsplit(":", 1)[1])


def test_ssh_arguments_forward_loopback_without_prompts():
    target = ssh_target("ssh://ops@gpu-a.example:2222/7171")

    arguments = ssh_arguments(target, 40001)

    assert arguments[:3] == ["-N", "-L", "127.0.0.1:40001:127.0.0.1:7171"]
    for option in (
        "ExitOnForwardFailure=yes",
        "BatchMode=yes",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=3",
    ):
        assert option in arguments
    assert arguments[arguments.index("-p") + 1] == "2222"
    assert arguments[-2:] == ["--", "ops@gpu-a.example"]


def test_ssh_url_without_path_uses_default_agent_port():
    target = ssh_target("ssh://gpu-a")

    assert (target.user, target.host, target.ssh_port, target.agent_port) == (
        None,
        "gpu-a",
        None,
        7070,
    )
    assert ssh_arguments(target, 40001)[-1] == "gpu-a"
    assert "-p" not in ssh_arguments(target, 40001)


async def test_console_reaches_agent_through_tunnel(
    tmp_path: Path, agent_factory, fake_ssh: Path
):
    agent = agent_factory()
    url = f"ssh://ops@gpu-a.example:2222/{agent_port(agent)}"
    app = RigdeckApp(
        [entry_for(tmp_path, "tunnelled", url, agent.tokens["viewer"])],
        poll_seconds=0.5,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        client = app.clients["tunnelled"]
        await wait_until(
            pilot, lambda: app.data["tunnelled"].host is not None, timeout=20
        )
        pid = client.tunnel.pid

        assert app.data["tunnelled"].host["name"] == "test-agent"
        [start] = starts(fake_ssh)
        assert start["pid"] == pid
        assert start["args"][-1] == "ops@gpu-a.example"
        assert f"127.0.0.1:{agent_port(agent)}" in start["args"][2]

    # The console closed the tunnel on exit.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_tunnel_reopens_after_ssh_dies(tmp_path: Path, agent_factory, fake_ssh):
    agent = agent_factory()
    url = f"ssh://ops@gpu-a.example/{agent_port(agent)}"
    client = AgentClient(entry_for(tmp_path, "t", url, agent.tokens["viewer"]))
    try:
        assert (await client.get("/api/v1/host"))["name"] == "test-agent"
        first_pid = client.tunnel.pid
        os.kill(first_pid, signal.SIGKILL)
        await wait_for_exit(client)

        host = await client.get("/api/v1/host")

        assert host["name"] == "test-agent"
        assert client.tunnel.opened_count == 2
        assert client.tunnel.pid != first_pid
        assert [start["pid"] for start in starts(fake_ssh)] == [
            first_pid,
            client.tunnel.pid,
        ]
    finally:
        await client.aclose()


async def wait_for_exit(client: AgentClient) -> None:
    import asyncio

    for _ in range(200):
        if not client.tunnel.is_open:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the killed ssh process was not reaped")


async def test_login_failure_is_reported(
    tmp_path: Path, fake_ssh, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FAKE_SSH_FAIL", "ops@gpu-a: Permission denied (publickey).")
    client = AgentClient(AgentEntry("t", "ssh://ops@gpu-a/7070"))
    try:
        with pytest.raises(AgentRequestError) as raised:
            await client.get("/api/v1/host")

        assert "exited with status 255" in raised.value.message
        assert "Permission denied (publickey)" in raised.value.message
        assert "ssh -o BatchMode=yes ops@gpu-a" in raised.value.message
        assert client.status.state is AgentState.UNREACHABLE
    finally:
        await client.aclose()


async def test_missing_ssh_client_is_reported(tmp_path: Path):
    client = AgentClient(
        AgentEntry("t", "ssh://ops@gpu-a/7070"), ssh_command="no-such-ssh-client"
    )
    try:
        with pytest.raises(AgentRequestError) as raised:
            await client.get("/api/v1/host")

        assert "'no-such-ssh-client' is not on PATH" in raised.value.message
        assert client.status.state is AgentState.UNREACHABLE
    finally:
        await client.aclose()
