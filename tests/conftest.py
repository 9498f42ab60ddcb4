"""Shared fixtures: real agent processes on free loopback ports."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import (  # noqa: F401  (re-exported for older imports)
    REPO,
    RunningAgent,
    agent_cli,
    start_agent,
    wait_for,
    write_config,
)


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., RunningAgent]]:
    """Start real agents; every one still running is stopped at teardown."""
    started: list[RunningAgent] = []

    def factory(
        extra_config: str = "",
        env: dict[str, str] | None = None,
        name: str = "test-agent",
        directory: Path | None = None,
    ) -> RunningAgent:
        directory = directory or tmp_path / f"agent{len(started)}"
        config = directory / "agent.toml"
        if not config.exists():
            write_config(directory, extra_config, name=name)
        agent = start_agent(config, env=env)
        started.append(agent)
        return agent

    yield factory
    for agent in started:
        agent.stop()
        if agent.process.poll() is None:
            os.killpg(agent.process.pid, signal.SIGKILL)


@pytest.fixture
def running_agent(agent_factory: Callable[..., RunningAgent]) -> RunningAgent:
    return agent_factory()
