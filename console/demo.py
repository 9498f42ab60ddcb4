"""``rigdeck demo``: a local agent in a temporary directory, and the console on it.

The agent runs as a subprocess (``python -m agent.cli``), so the console
process still imports no agent code.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from console.config import AgentEntry
from console.errors import ConsoleError

EXAMPLE_CONFIG = Path(__file__).resolve().parent.parent / "examples" / "agent.toml"
START_TIMEOUT_SECONDS = 60.0


class DemoAgent:
    """A ``rigdeck-agent run`` subprocess with its own data directory."""

    def __init__(
        self, workdir: Path, name: str, example: Path = EXAMPLE_CONFIG
    ) -> None:
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
        # A short canary, so the demo's release finishes while you watch.
        text = _set_key(text, "models.release", "window_seconds", "20")
        text = _set_key(text, "models.release", "min_requests", "1")
        self.config.write_text(text)

    def create_token(self, name: str, role: str) -> Path:
        token_file = self.workdir / f"{name}.token"
        self._agent_cli(
            "token", "create", name, "--role", role, "--output", str(token_file)
        )
        return token_file

    def start(self) -> None:
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(self.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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

    def start_replay(self, rate_rows_per_second: float = 40.0) -> None:
        """Send Shuttle rows with feedback labels to the served model."""
        log = (self.workdir / "replay.log").open("w")
        self.replay = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent.cli",
                "replay",
                "shuttle",
                "--source",
                "Shuttle",
                "--rate",
                str(rate_rows_per_second),
                "--config",
                str(self.config),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop_replay(self) -> None:
        replay = getattr(self, "replay", None)
        if replay is not None and replay.poll() is None:
            os.killpg(replay.pid, signal.SIGTERM)
            replay.wait(10)

    def _healthy(self, runtime: dict) -> bool:
        try:
            response = httpx.get(f"{runtime['url']}/api/v1/health", timeout=2)
        except httpx.HTTPError:
            return False
        self.url = runtime["url"]
        return response.status_code == 200

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

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


def run_demo(keep: bool = False) -> None:
    """Start the demo agent, open the console on it, and clean up afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="rigdeck-demo-"))
    agent = DemoAgent(workdir / "host-a", "demo-host-a")
    try:
        # Two people: the demo operator requests releases, you approve them.
        operator_file = agent.create_token("demo-operator", "operator")
        approver_file = agent.create_token("demo-approver", "approver")
        agent.start()
        from console.demo_script import DemoScript

        entry = AgentEntry(name=agent.name, url=agent.url, token_file=approver_file)
        script = DemoScript(
            agent.url,
            operator_file.read_text().strip(),
            on_live=agent.start_replay,
        )
        app = _demo_app([entry], script)
        app.run()
    finally:
        agent.stop_replay()
        agent.stop()
        if keep:
            print(f"Demo files kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _demo_app(agents: list[AgentEntry], script):
    """Build the console with the demo script running in one of its async workers."""
    from console.app import RigdeckApp

    class DemoApp(RigdeckApp):
        def on_ready(self) -> None:
            def show(message: str) -> None:
                self.notify(message, timeout=20)

            self.run_worker(script.run(show), group="demo-script", exit_on_error=False)

    return DemoApp(agents)
