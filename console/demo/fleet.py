"""The demo's agents: ``rigdeck-agent run`` subprocesses on free loopback ports.

Each agent runs as a subprocess (``python -m agent.cli``) on a config
made from ``examples/host-a.toml`` or ``examples/host-b.toml``, so the
console process still imports no agent code.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from console.config import AgentEntry
from console.demo.people import DemoHost
from console.errors import ConsoleError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_PAIR = (EXAMPLES / "host-a.toml", EXAMPLES / "host-b.toml")
START_TIMEOUT_SECONDS = 60.0
# A short canary, so that the demo's release finishes while you watch.
CANARY_WINDOW_SECONDS = 15
CANARY_MIN_REQUESTS = 50
# The canary's p95 rests on some 50 requests here, on a laptop or a shared
# 2-core machine that is also training: one request slowed by 10 ms would
# abort it at the default 5 ms slack. The demo allows 25 ms.
CANARY_LATENCY_SLACK_SECONDS = 0.025
PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: dlopen there could block on a lock
# that another thread of the console held at the fork.
_LIBC = ctypes.CDLL(None, use_errno=True)


class DemoAgent:
    """A ``rigdeck-agent run`` subprocess with its own data directory."""

    def __init__(self, workdir: Path, name: str, example: Path) -> None:
        self.workdir = workdir
        self.name = name
        self.config = workdir / "agent.toml"
        self.log_path = workdir / "agent.log"
        self.process: subprocess.Popen | None = None
        self.url = ""
        self._write_config(example)

    def _write_config(self, example: Path) -> None:
        if not example.exists():
            raise ConsoleError(
                f"The demo configuration {example} is missing; run the demo from a "
                "checkout of the rigdeck repository."
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = example.read_text()
        # The demo needs free ports and its own name, whatever the example sets.
        text = _set_key(text, "api", "port", "0")
        text = _set_key(text, "agent", "name", json.dumps(self.name))
        text = _set_key(text, "agent", "data_dir", '"data"')
        text = _set_key(text, "serving", "port", "0")
        text = _set_key(
            text, "models.release", "window_seconds", str(CANARY_WINDOW_SECONDS)
        )
        text = _set_key(
            text, "models.release", "min_requests", str(CANARY_MIN_REQUESTS)
        )
        text = _set_key(
            text,
            "models.release",
            "latency_slack_seconds",
            str(CANARY_LATENCY_SLACK_SECONDS),
        )
        self.config.write_text(text)
        model = tomllib.loads(text)["models"][0]
        self.model = model["name"]
        self.source = model["dataset"]["options"]["name"]
        self.held_out_from = model["dataset"]["options"].get("first_rows", 0)

    def create_token(self, name: str, role: str) -> Path:
        token_file = self.workdir / f"{name}.token"
        self._agent_cli(
            "token", "create", name, "--role", role, "--output", str(token_file)
        )
        return token_file

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the agent process; ``wait_ready`` waits for its API."""
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=stop_with_parent,
        )

    def exited(self) -> str | None:
        """Return why the agent is gone, or None while it runs."""
        if self.process is None or self.process.poll() is None:
            return None
        return (
            f"the demo agent {self.name} exited with {self.process.returncode}; "
            f"see {self.log_path}"
        )

    def wait_ready(self) -> None:
        assert self.process is not None
        runtime = self.workdir / "data" / "agent.json"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConsoleError(
                    f"The demo agent {self.name} exited with "
                    f"{self.process.returncode}; the end of its log "
                    f"{self.log_path}:\n{self.log_path.read_text()[-2000:]}"
                )
            if runtime.exists() and self._healthy(json.loads(runtime.read_text())):
                return
            time.sleep(0.1)
        raise ConsoleError(
            f"The demo agent {self.name} did not respond within "
            f"{START_TIMEOUT_SECONDS:.0f} s; see {self.log_path}."
        )

    def _healthy(self, runtime: dict) -> bool:
        try:
            response = httpx.get(f"{runtime['url']}/api/v1/health", timeout=2)
        except httpx.HTTPError:
            return False
        self.url = runtime["url"]
        return response.status_code == 200

    def stop(self) -> None:
        """Stop the agent, and its serving worker if the agent died before it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._end_serving_worker()

    def _end_serving_worker(self) -> None:
        # An agent stops its worker; one killed with SIGKILL leaves it to the
        # next agent start, which a demo never has.
        runtime = self.workdir / "data" / "serving.json"
        try:
            pid = int(json.loads(runtime.read_text())["pid"])
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return
        if b"agent.serving.worker" in command and str(self.workdir).encode() in command:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGTERM)

    def _agent_cli(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "agent.cli", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ConsoleError(
                f"rigdeck-agent {args[0]} failed: {result.stderr.strip()}"
            )


def stop_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the demo process dies.

    Runs in the child between fork and exec. Without it, a demo killed with
    SIGKILL (or by a test's timeout) leaves its agents running.
    """
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _set_key(text: str, section: str, key: str, value: str) -> str:
    """Set ``key`` in ``[section]`` of a TOML text, keeping its comments."""
    lines = text.splitlines()
    current = None
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = stripped.strip("[]").strip()
        elif stripped.startswith("[["):
            current = None
        elif current == section and stripped.split("=")[0].strip() == key:
            lines[index] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    for index, line in enumerate(lines):
        if line.strip() == f"[{section}]":
            lines.insert(index + 1, f"{key} = {value}")
            return "\n".join(lines) + "\n"
    return text + f"\n[{section}]\n{key} = {value}\n"


class DemoFleet:
    """The demo's two agents, each with an operator and an approver token."""

    def __init__(self, workdir: Path, examples: tuple[Path, Path] = EXAMPLE_PAIR):
        self.workdir = workdir
        self.agents = [
            DemoAgent(workdir / "host-a", "demo-host-a", examples[0]),
            DemoAgent(workdir / "host-b", "demo-host-b", examples[1]),
        ]
        self.tokens: dict[str, dict[str, Path]] = {}

    def start(self) -> None:
        # Two people: the demo operator requests releases, you approve them.
        for agent in self.agents:
            self.tokens[agent.name] = {
                role: agent.create_token(f"demo-{role}", role)
                for role in ("operator", "approver")
            }
        for agent in self.agents:
            agent.launch()
        for agent in self.agents:
            agent.wait_ready()

    def stop(self) -> None:
        for agent in self.agents:
            agent.stop()

    def hosts(self) -> list[DemoHost]:
        return [
            DemoHost(
                name=agent.name,
                model=agent.model,
                url=agent.url,
                config=agent.config,
                workdir=agent.workdir,
                source=agent.source,
                held_out_from=agent.held_out_from,
                operator_token=self.tokens[agent.name]["operator"].read_text().strip(),
                approver_token=self.tokens[agent.name]["approver"].read_text().strip(),
                exited=agent.exited,
            )
            for agent in self.agents
        ]

    def entries(self) -> list[AgentEntry]:
        """Return the console's agent entries, each with the approver token."""
        return [
            AgentEntry(
                name=agent.name,
                url=agent.url,
                token_file=self.tokens[agent.name]["approver"],
            )
            for agent in self.agents
        ]
