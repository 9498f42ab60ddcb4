"""Take docs/console.svg: the console's fleet screen watching a real agent.

Run it from a checkout with the agent extras installed (``make test``
installs them):

    .venv/bin/python docs/screenshot.py                # writes docs/console.svg
    .venv/bin/python docs/screenshot.py --output x.svg

It starts ``rigdeck-agent run`` on free loopback ports in a temporary
directory and trains version 1 of ``shuttle`` on river's Shuttle data
set. An operator token requests its release and an approver token
approves it, so that it is deployed. The script then opens the console
under Textual's pilot, waits until the fleet row shows the agent
reachable with ``shuttle 1`` deployed, and saves the screen as SVG. On a
machine without an NVIDIA driver the GPU column shows n/a and the
reason, because nothing is faked. The whole script took 11 to 16 s on a
2-core x86_64 machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from textual.css.query import NoMatches
from textual.pilot import Pilot
from textual.widgets.data_table import RowDoesNotExist

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from console.app import RigdeckApp  # noqa: E402
from console.client import AgentState  # noqa: E402
from console.config import AgentEntry  # noqa: E402
from console.screens import FleetScreen  # noqa: E402
from console.screens.fleet import COLUMNS  # noqa: E402

AGENT_NAME = "host-a"
MODEL = "shuttle"
SCREEN_SIZE = (100, 12)
START_TIMEOUT_SECONDS = 60.0
TRAIN_TIMEOUT_SECONDS = 300.0
CONSOLE_TIMEOUT_SECONDS = 60.0
SETTLE_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 60.0
CONFIG = f"""
[agent]
name = "{AGENT_NAME}"
region = "eu"
data_dir = "data"

[api]
port = 0

[serving]
port = 0

[[models]]
name = "{MODEL}"
description = "Shuttle sensor anomalies (river's Statlog Shuttle)"

[models.dataset]
plugin = "river"
options = {{ name = "Shuttle" }}
target = "anomaly"
regions = ["eu"]

[models.recipe]
plugin = "tabular-mlp"

[models.schedule]
cron = "0 3 * * *"

[[models.gates]]
plugin = "metric-threshold"
options = {{ metric = "accuracy", min = 0.99 }}

[[models.gates]]
plugin = "residency"
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO / "docs" / "console.svg",
        help="SVG file to write. Default: docs/console.svg.",
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="rigdeck-screenshot-"))
    try:
        path = take_screenshot(workdir, args.output.resolve())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"Wrote {path}")
    return 0


def take_screenshot(workdir: Path, output: Path) -> Path:
    config = workdir / "agent.toml"
    config.write_text(CONFIG)
    operator = create_token(config, "operator").read_text().strip()
    approver_file = create_token(config, "approver")
    log_path = workdir / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_for(
            lambda: _agent_url(agent, workdir / "data" / "agent.json", log_path),
            START_TIMEOUT_SECONDS,
            "the agent's health endpoint",
        )
        deploy_first_version(url, operator, approver_file.read_text().strip())
        entry = AgentEntry(name=AGENT_NAME, url=url, token_file=approver_file)
        return asyncio.run(save_fleet_screen(entry, output))
    finally:
        stop(agent)


def stop(agent: subprocess.Popen) -> None:
    """Stop the agent with SIGTERM, so that it ends its serving worker too."""
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait()


def create_token(config: Path, role: str) -> Path:
    """Create a token named after its role, and return the file it is written to."""
    token_file = config.parent / f"{role}.token"
    subprocess.run(
        [sys.executable, "-m", "agent.cli", "token", "create", role, "--role", role]
        + ["--output", str(token_file), "--config", str(config)],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return token_file


def _agent_url(agent: subprocess.Popen, runtime: Path, log_path: Path) -> str | None:
    """Return the agent's URL once its health endpoint responds, else None."""
    if agent.poll() is not None:
        raise RuntimeError(
            f"The agent exited with status {agent.returncode}:\n{log_path.read_text()}"
        )
    try:
        info = json.loads(runtime.read_text())
        response = httpx.get(f"{info['url']}/api/v1/health", timeout=2)
    except (OSError, ValueError, httpx.HTTPError):
        return None
    return info["url"] if response.status_code == 200 else None


def deploy_first_version(url: str, operator: str, approver: str) -> None:
    """Train version 1 and release it. A model's first release goes live at once."""
    with (
        httpx.Client(base_url=url, headers=_bearer(operator), timeout=30) as ops,
        httpx.Client(base_url=url, headers=_bearer(approver), timeout=30) as approvals,
    ):
        run = _ok(ops.post(f"/api/v1/jobs/{MODEL}/trigger", json={}))
        ended = wait_for(
            lambda: _ended(_ok(ops.get(f"/api/v1/runs/{run['id']}"))),
            TRAIN_TIMEOUT_SECONDS,
            f"run {run['id']} to end",
        )
        if ended["state"] != "succeeded":
            raise RuntimeError(f"Run {run['id']} ended {ended['state']}: {ended}")
        release = _ok(
            ops.post(
                "/api/v1/releases",
                json={"model": MODEL, "version": 1, "reason": "first version"},
            )
        )
        _ok(
            approvals.post(
                f"/api/v1/releases/{release['id']}/approve",
                json={"reason": "gates passed"},
            )
        )
        wait_for(
            lambda: _ok(ops.get("/api/v1/serving"))["state"] == "running",
            TRAIN_TIMEOUT_SECONDS,
            "the serving worker to run",
        )


async def save_fleet_screen(entry: AgentEntry, output: Path) -> Path:
    app = RigdeckApp([entry], poll_seconds=0.5)
    async with app.run_test(size=SCREEN_SIZE) as pilot:
        if not await _wait_for_row(pilot, app, entry.name, CONSOLE_TIMEOUT_SECONDS):
            raise RuntimeError(
                f"The fleet screen did not show {entry.name} with {MODEL} "
                f"deployed within {CONSOLE_TIMEOUT_SECONDS:.0f} s."
            )
        # At 100 % CPU the CPU and MEM cell has no room for the memory
        # figure. The host is busiest right after the serving worker starts,
        # so give it a little time to settle, and take the picture anyway.
        await _wait_for_row(
            pilot, app, entry.name, SETTLE_TIMEOUT_SECONDS, complete=True
        )
        cells = _fleet_row_cells(app, entry.name)
        if cells is None or not _row_ready(cells, complete=False):
            raise RuntimeError(
                f"{entry.name} stopped being reachable before the screenshot; see "
                "the agent's log and run the script again."
            )
        path = app.save_screenshot(filename=output.name, path=str(output.parent))
    return Path(path)


async def _wait_for_row(
    pilot: Pilot, app: RigdeckApp, name: str, timeout: float, complete: bool = False
) -> bool:
    """Let the app run until the agent's row is ready, or return False on time-out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cells = _fleet_row_cells(app, name)
        if cells is not None and _row_ready(cells, complete):
            return True
        await pilot.pause(0.1)
    return False


def _row_ready(cells: list[str], complete: bool) -> bool:
    # The CPU and MEM cell shows percentages once the host was fetched, and
    # both of them when they fit.
    cpu_memory = cells[COLUMNS.index("CPU MEM")]
    deployed = f"{MODEL} 1" in cells[COLUMNS.index("MODELS")]
    return deployed and cpu_memory.count("%") >= (2 if complete else 1)


def _fleet_row_cells(app: RigdeckApp, name: str) -> list[str] | None:
    """Return the agent's fleet row as text cells once the agent is reachable."""
    client = app.clients.get(name)
    if client is None or client.status.state is not AgentState.OK:
        return None
    if not isinstance(app.screen, FleetScreen):
        return None
    try:
        cells = app.screen.table.get_row(name)
    except (NoMatches, RowDoesNotExist):
        return None
    return [getattr(cell, "plain", str(cell)) for cell in cells]


def wait_for(condition: Callable[[], Any], timeout: float, description: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"Timed out after {timeout:.0f} s waiting for {description}.")


def _ended(run: dict[str, Any]) -> dict[str, Any] | None:
    return run if run["state"] not in ("queued", "running") else None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.is_error:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} returned "
            f"{response.status_code}: {response.text}"
        )
    return response.json()


if __name__ == "__main__":
    sys.exit(main())
