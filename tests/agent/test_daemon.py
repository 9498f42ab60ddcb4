"""The agent process: one per data directory, a clean stop, and kill -9."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import (
    PYTHON,
    REPO,
    RunningAgent,
    agent_cli,
    start_agent,
    wait_for,
    write_config,
)

from store import Store, audit

SECOND_AGENT_TIMEOUT_SECONDS = 20
ACKNOWLEDGED_BEFORE_KILL = 40


def test_second_agent_on_same_data_dir_names_pid(running_agent: RunningAgent) -> None:
    started = time.monotonic()

    second = subprocess.run(
        [PYTHON, "-m", "agent.cli", "run", "--config", str(running_agent.config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SECOND_AGENT_TIMEOUT_SECONDS,
    )

    elapsed = time.monotonic() - started
    pid = running_agent.process.pid
    assert second.returncode == 1
    assert (
        f"Another agent (process {pid}) is already running on the data directory"
        in (second.stderr)
    )
    assert f"kill {pid}" in second.stderr
    assert elapsed < 10
    runtime = json.loads((running_agent.data_dir / "agent.json").read_text())
    assert runtime["pid"] == pid
    assert httpx.get(f"{running_agent.url}/api/v1/health").status_code == 200


def test_sigterm_stops_agent_gracefully(running_agent: RunningAgent) -> None:
    returncode = running_agent.stop(signal.SIGTERM)

    log = running_agent.log()
    assert returncode == 0, log
    assert "received SIGTERM; stopping" in log
    assert "agent test-agent stopped" in log
    assert "Traceback" not in log
    assert not (running_agent.data_dir / "agent.json").exists()


def test_sigint_stops_agent_gracefully(running_agent: RunningAgent) -> None:
    returncode = running_agent.stop(signal.SIGINT)

    log = running_agent.log()
    assert returncode == 0, log
    assert "agent test-agent stopped" in log
    assert not (running_agent.data_dir / "agent.json").exists()


def test_agent_restarts_after_clean_stop(
    agent_factory: Callable[..., RunningAgent],
) -> None:
    first = agent_factory()
    first.stop()

    second = start_agent(first.config, tokens=False)
    try:
        health = httpx.get(f"{second.url}/api/v1/health")
    finally:
        second.stop()

    assert health.status_code == 200


def _create_tokens_until_failure(agent: RunningAgent, acknowledged: list[str]) -> None:
    """Create tokens one by one and record each name that got a 201 response."""
    with agent.client("admin") as admin:
        while True:
            name = f"burst-{uuid.uuid4().hex[:12]}"
            try:
                response = admin.post(
                    "/api/v1/tokens", json={"name": name, "role": "viewer"}
                )
            except httpx.TransportError:
                return
            if response.status_code != 201:
                return
            acknowledged.append(name)


@pytest.mark.slow
def test_kill_9_during_writes_keeps_acknowledged(
    agent_factory: Callable[..., RunningAgent],
) -> None:
    agent = agent_factory()
    acknowledged: list[str] = []
    burst = threading.Thread(
        target=_create_tokens_until_failure, args=(agent, acknowledged)
    )
    burst.start()
    wait_for(
        lambda: len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL or not burst.is_alive(),
        timeout=60,
        what=f"{ACKNOWLEDGED_BEFORE_KILL} acknowledged token creations",
    )
    assert len(acknowledged) >= ACKNOWLEDGED_BEFORE_KILL, agent.log()

    os.killpg(agent.process.pid, signal.SIGKILL)
    agent.process.wait(30)
    burst.join(30)

    assert agent.process.returncode == -signal.SIGKILL
    store = Store(agent.data_dir / "store.db")
    assert store.quick_check() == "ok"
    names = {row[0] for row in store.db.conn.execute("SELECT name FROM tokens")}
    assert set(acknowledged) <= names
    targets = {
        row[0] for row in store.db.conn.execute("SELECT target FROM audit_entries")
    }
    assert {f"token/{name}" for name in acknowledged} <= targets
    check = audit.verify_chain(store.db)
    assert check.ok, check.message
    store.close()
    verified = agent_cli(agent.config, "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr

    restarted = start_agent(agent.config, tokens=False)
    restarted.tokens = agent.tokens
    try:
        with restarted.client("admin") as admin:
            listed = {
                row["name"] for row in admin.get("/api/v1/tokens").json()["items"]
            }
    finally:
        restarted.stop()
    assert set(acknowledged) <= listed


def test_port_in_use_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config.write_text(config.read_text().replace("port = 0", f"port = {port}"))

        result = subprocess.run(
            [PYTHON, "-m", "agent.cli", "run", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=SECOND_AGENT_TIMEOUT_SECONDS,
        )

    assert result.returncode == 1
    assert f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use." in (
        result.stderr
    )
    assert f"set api.port in {config}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "agent.json").exists()
