"""Helpers for tests: real agent processes on free loopback ports.

Test modules import these as ``from harness import ...``. They live outside
conftest.py because several conftest modules share that name, and
``from conftest import`` would pick whichever pytest loaded last.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as error:  # the condition may race the thing it waits for
            last_error = error
            value = None
        if value:
            return value
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what or condition}{detail}"
    )


def write_config(directory: Path, extra: str = "", name: str = "test-agent") -> Path:
    """Write a minimal agent.toml on port 0 with a fast telemetry interval."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "agent.toml"
    config.write_text(
        f"""
[agent]
name = "{name}"
region = "eu"
data_dir = "data"

[api]
port = 0

[telemetry]
interval_seconds = 0.5
flush_seconds = 1.0
nvml_module = "tests.fakes.fake_nvml"
{extra}
"""
    )
    return config


def agent_cli(
    config: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PYTHON, "-m", "agent.cli", *args, "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"rigdeck-agent {' '.join(args)} failed:\n{result.stderr}")
    return result


@dataclass
class RunningAgent:
    """A real ``rigdeck-agent run`` process and the tokens created for it."""

    config: Path
    process: subprocess.Popen
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.config.parent / "data"

    def client(self, role: str | None = "viewer", **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def start_agent(
    config: Path, env: dict[str, str] | None = None, tokens: bool = True
) -> RunningAgent:
    """Start ``rigdeck-agent run`` and wait until its API answers."""
    data_dir = config.parent / "data"
    runtime = data_dir / "agent.json"
    runtime.unlink(missing_ok=True)
    agent = RunningAgent(config=config, process=None)  # type: ignore[arg-type]
    if tokens:
        for role in ("viewer", "operator", "approver", "admin"):
            if role not in agent.tokens:
                result = agent_cli(
                    config,
                    "token",
                    "create",
                    f"test-{role}-{os.urandom(3).hex()}",
                    "--role",
                    role,
                )
                agent.tokens[role] = result.stdout.strip()
    agent.log_path = config.parent / f"agent-{os.urandom(3).hex()}.log"
    log = agent.log_path.open("w")
    agent.process = subprocess.Popen(
        [PYTHON, "-m", "agent.cli", "run", "--config", str(config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        start_new_session=True,
    )

    def ready() -> bool:
        if agent.process.poll() is not None:
            raise AssertionError(
                f"agent exited with {agent.process.returncode}:\n{agent.log()}"
            )
        if not runtime.exists():
            return False
        info = json.loads(runtime.read_text())
        if info["pid"] != agent.process.pid:
            return False
        agent.url = info["url"]
        return httpx.get(f"{agent.url}/api/v1/health", timeout=2).status_code == 200

    wait_for(ready, timeout=60, what="the agent's health endpoint")
    return agent
