"""A slow agent and a dead one must not freeze the console.

One agent responds after 20 seconds, another refuses connections, a third
(a real agent) responds normally, while the console polls all three. Keys
are handled at once, the slow agent shows as slow and the dead one as
unreachable, each with the age of its last good data, and the healthy
agent keeps updating.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from console_helpers import entry_for, wait_until
from loopback_agent import LoopbackAgent

from console.app import RigdeckApp
from console.client import AgentState
from console.screens import RunsScreen
from console.widgets import ResourceTable

pytestmark = pytest.mark.slow


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def loopback_agents():
    started: list[LoopbackAgent] = []

    def start() -> LoopbackAgent:
        started.append(LoopbackAgent())
        return started[-1]

    yield start
    for agent in started:
        agent.close()


async def test_slow_and_dead_agents_do_not_block_keys(
    tmp_path: Path, agent_factory, loopback_agents
):
    real = agent_factory()
    slow = loopback_agents()
    gone = loopback_agents()
    entries = [
        entry_for(tmp_path, "real", real.url, real.tokens["viewer"]),
        entry_for(tmp_path, "slow", slow.url, "any"),
        entry_for(tmp_path, "gone", gone.url, "any"),
        entry_for(tmp_path, "dead", closed_port_url(), "any"),
    ]
    app = RigdeckApp(entries, poll_seconds=0.5)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#fleet", ResourceTable)
        clients = app.clients
        await wait_until(
            pilot,
            lambda: all(
                clients[name].status.state is AgentState.OK
                for name in ("real", "slow", "gone")
            ),
            timeout=20,
            what="three agents ok",
        )

        slow.delay_seconds = 20.0
        gone.close()
        await wait_until(
            pilot,
            lambda: (
                clients["slow"].status.state is AgentState.SLOW
                and clients["gone"].status.state is AgentState.UNREACHABLE
                and clients["dead"].status.state is AgentState.UNREACHABLE
            ),
            timeout=15,
            what="slow and unreachable states",
        )
        real_seen = clients["real"].status.last_ok_at
        await wait_until(
            pilot,
            lambda: (
                table.cell_text("slow", "STATE").startswith("◐ slow")
                and table.cell_text("gone", "STATE").startswith("✕ unreachable")
                and table.cell_text("dead", "STATE") == "✕ unreachable never"
            ),
            timeout=5,
        )
        assert clients["slow"].in_flight_since is not None  # still waiting

        started = time.monotonic()
        await pilot.press("colon", *"runs", "enter")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("escape")
        elapsed = time.monotonic() - started

        assert elapsed < 3.0, f"keys took {elapsed:.1f} s"
        assert clients["slow"].in_flight_since is not None
        await wait_until(
            pilot,
            lambda: clients["real"].status.last_ok_at > real_seen,
            timeout=5,
            what="the real agent to keep updating",
        )
        await wait_until(
            pilot,
            lambda: (
                table.cell_text("slow", "STATE")
                not in ("◐ slow <5s", "◐ slow 0s", "◐ slow 1s")
                and table.cell_text("gone", "STATE") != "✕ unreachable <5s"
            ),
            timeout=10,
            what="the ages of the last good data to grow",
        )
        assert table.cell_text("real", "STATE").startswith("● ok")


async def test_dead_agent_backs_off(tmp_path: Path):
    app = RigdeckApp(
        [entry_for(tmp_path, "dead", closed_port_url(), "any")], poll_seconds=0.1
    )
    async with app.run_test(size=(100, 30)) as pilot:
        client = app.clients["dead"]
        await wait_until(pilot, lambda: client.status.failures >= 2, timeout=10)
        failures = client.status.failures
        await pilot.pause(1.0)

        # Ten ticks passed, but the backoff (2 s, then 4 s) allowed at most one try.
        assert client.status.failures <= failures + 1
        assert client.status.retry_at > time.monotonic()
