"""Measure the console against many simulated agents on loopback.

A separate process serves N simulated agents, each on its own loopback
port, with canned JSON for the routes the fleet view polls (a host with 8
GPUs whose utilisation changes between polls, running runs, deployments,
open alerts, whoami). The console runs headless in this process (Textual's
test driver: every frame is composed and rendered, but nothing is written
to a terminal) at 160x50, and polls them as it would real agents. At that
size 46 rows are in view. The fleet view polls rows out of view less often
(console/screens/fleet.py), so the CPU figure depends on the size.

Figures:

- time to the first complete fleet view: from the app's start until every
  row shows its agent as ok with host, runs, deployments and alerts;
- the console's CPU at steady state: this process's user+system CPU time
  over a window on the fleet view, as a percentage of one core;
- key latency: from sending a key event until the app has handled it. The
  keys are '/' (the filter prompt opens), Escape (it closes) and ':runs'
  Enter (the Runs screen shows). It is measured with every agent fast, then
  with ``--slow`` of them responding after 20 seconds. The frame that shows
  the change is drawn after this, on Textual's next refresh.

The baseline, measured in the same run, is the same console watching one
simulated agent. Targets: first view under 2 s and steady CPU under 25 % of
one core at 200 agents. Exits 1 when a target is missed.

    .venv/bin/python bench/console_fleet.py [--agents 200] [--slow 20]
        [--seconds 20] [--presses 40]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _results import Figure, report

REPO_ROOT = Path(__file__).resolve().parents[1]
FIRST_VIEW_TARGET_SECONDS = 2.0
CPU_TARGET_PERCENT = 25.0
SLOW_DELAY_SECONDS = 20.0
TERMINAL_SIZE = (160, 50)
GIB = 1024**3


# The simulated agents (run in their own process).


# Each agent's host body comes in this many variants, served in turn, so
# utilisation and memory change between polls as on busy hosts.
HOST_VARIANTS = 5


def _canned_bodies(index: int, variant: int = 0) -> dict[str, bytes]:
    gpu = {
        "state": "ok",
        "name": "NVIDIA H100 80GB HBM3",
        "utilization_ratio": ((index + variant) % 10) / 10,
        "memory_used_bytes": (index % 7) * 10 * GIB,
        "memory_total_bytes": 80 * GIB,
        "temperature_celsius": 60,
        "power_watts": 300.0,
        "power_limit_watts": 700.0,
        "processes": [
            {"pid": 4000 + index, "used_memory_bytes": GIB, "name": "python"}
        ],
        "field_status": {},
    }
    host = {
        "name": f"sim-{index:03d}",
        "region": "eu",
        "hostname": f"sim-{index:03d}",
        "software": {"rigdeck": "0.1.0"},
        "cpu": {
            "utilization_ratio": 0.25,
            "core_utilization_ratios": [0.25] * 64,
        },
        "load": {"1m": 4.0, "5m": 4.0, "15m": 4.0},
        "memory": {"total_bytes": 512 * GIB, "used_bytes": (200 + variant * 20) * GIB},
        "swap": {"total_bytes": 0, "used_bytes": 0},
        "disks": [
            {"mountpoint": "/", "total_bytes": 2000 * GIB, "used_bytes": 900 * GIB}
        ],
        "network": [],
        "gpu": {
            "status": "ok",
            "driver_version": "550.54.15",
            "gpus": [{**gpu, "index": i, "uuid": f"GPU-{i}"} for i in range(8)],
        },
    }
    runs = {
        "items": [
            {"id": 7, "model": "shuttle", "state": "running", "pid": 4000 + index}
        ],
        "next_cursor": None,
    }
    deployments = {
        "items": [
            {"model": "shuttle", "stable_version": 3, "canary_version": 4},
            {"model": "iris", "stable_version": 1, "canary_version": None},
        ],
        "next_cursor": None,
    }
    alerts = {
        "items": [{"id": 1, "severity": "warning", "acknowledged_at": None}],
        "next_cursor": None,
    }
    return {
        "/api/v1/host": json.dumps(host).encode(),
        "/api/v1/runs": json.dumps(runs).encode(),
        "/api/v1/deployments": json.dumps(deployments).encode(),
        "/api/v1/alerts": json.dumps(alerts).encode(),
        "/api/v1/whoami": json.dumps({"name": "bench", "role": "viewer"}).encode(),
    }


def _serve_agents(count: int, slow: int, ports_out, stop_event) -> None:
    """Serve ``count`` agents; the first ``slow`` of them respond after 20 s."""

    async def handle(reader, writer, bodies, hosts, delay):
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    break
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                path = request_line.split()[1].split(b"?")[0].decode()
                if delay:
                    await asyncio.sleep(delay)
                if path == "/api/v1/host":
                    hosts.append(hosts.pop(0))
                    body = hosts[0]
                else:
                    body = bodies.get(path)
                status = b"200 OK" if body is not None else b"404 Not Found"
                body = body or b'{"error": {"code": "not_found", "message": "no"}}'
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main():
        ports, servers = [], []
        for index in range(count):
            bodies = _canned_bodies(index)
            hosts = [
                _canned_bodies(index, variant)["/api/v1/host"]
                for variant in range(HOST_VARIANTS)
            ]
            delay = SLOW_DELAY_SECONDS if index < slow else 0.0
            server = await asyncio.start_server(
                lambda r, w, b=bodies, h=hosts, d=delay: handle(r, w, b, h, d),
                "127.0.0.1",
                0,
            )
            servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        ports_out.put(ports)
        while not stop_event.is_set():
            await asyncio.sleep(0.2)

    asyncio.run(main())


class SimulatedFleet:
    """The simulated agents' process; a context manager that returns the ports."""

    def __init__(self, count: int, slow: int = 0) -> None:
        context = multiprocessing.get_context("spawn")
        self._ports = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(
            target=_serve_agents, args=(count, slow, self._ports, self._stop)
        )

    def __enter__(self) -> list[int]:
        self._process.start()
        return self._ports.get(timeout=60)

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


# The console, measured in this process.


def _app(ports: list[int], token_file: Path):
    from console.app import RigdeckApp
    from console.config import AgentEntry

    entries = [
        AgentEntry(f"sim-{index:03d}", f"http://127.0.0.1:{port}", token_file)
        for index, port in enumerate(ports)
    ]
    return RigdeckApp(entries)


def _fleet_complete(app) -> bool:
    from console import resources
    from console.client import AgentState

    kinds = (resources.HOST, *resources.FLEET_KINDS)
    for name, client in app.clients.items():
        data = app.data[name]
        if client.status.state is not AgentState.OK:
            return False
        if any(kind not in data.fetched_at for kind in kinds):
            return False
    table = app.screen.query_one("#fleet")
    return table.row_count == len(app.clients) and all(
        table.cell_text(name, "STATE").startswith("● ok")
        and table.cell_text(name, "ALERTS") != "-"
        and table.cell_text(name, "MODELS") != "-"
        for name in app.clients
    )


async def _until(condition, timeout: float) -> float:
    started = time.perf_counter()
    while not condition():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def _press(app, key: str, character: str | None) -> None:
    # Pilot.press waits for the whole process to go idle, which a console
    # polling 200 agents seldom is; send the key the way a terminal does.
    from textual import events

    event = events.Key(key, character)
    event.set_sender(app)
    app._driver.send_message(event)


async def _key_latencies(app, presses: int) -> list[float]:
    """Return seconds from key to handled key: '/' opens the filter, Escape closes it.

    The last entry is a ':runs' command, from ':' to the Runs screen.
    """
    from console.widgets import FilterBar

    bar = app.screen.query_one(FilterBar)
    latencies = []
    for index in range(presses):
        if index % 2 == 0:
            key, character, expected = "slash", "/", True
        else:
            key, character, expected = "escape", None, False
        started = time.perf_counter()
        await _press(app, key, character)
        await _until(lambda e=expected: bar.is_open is e, 5)
        latencies.append(time.perf_counter() - started)
    from console.widgets import CommandBar

    command_bar = app.screen.query_one(CommandBar)
    started = time.perf_counter()
    await _press(app, "colon", ":")
    await _until(lambda: command_bar.input.has_focus, 5)
    for character in "runs":
        await _press(app, character, character)
    await _until(lambda: command_bar.input.value == "runs", 5)
    await _press(app, "enter", None)
    await _until(lambda: type(app.screen).__name__ == "RunsScreen", 5)
    latencies.append(time.perf_counter() - started)
    await _press(app, "escape", None)
    await _until(lambda: type(app.screen).__name__ == "FleetScreen", 5)
    return latencies


async def _measure(
    ports: list[int], token_file: Path, seconds: float, presses: int
) -> dict[str, float]:
    app = _app(ports, token_file)
    started = time.perf_counter()
    async with app.run_test(size=TERMINAL_SIZE):
        first_view = await _until(lambda: _fleet_complete(app), 60)
        first_view = time.perf_counter() - started
        await asyncio.sleep(3.0)  # let the off-screen tier settle into its cadence
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu_started
        wall = time.perf_counter() - wall_started
        latencies = await _key_latencies(app, presses)
    return {
        "first_view_seconds": first_view,
        "cpu_percent": 100 * cpu / wall,
        "key_median_ms": 1000 * statistics.median(latencies[:-1]),
        "key_max_ms": 1000 * max(latencies[:-1]),
        "command_ms": 1000 * latencies[-1],
    }


async def _measure_with_slow(
    ports: list[int], slow: int, token_file: Path, presses: int
) -> dict[str, float]:
    """Key latency while the first ``slow`` agents have requests hanging."""
    from console.client import AgentState

    app = _app(ports, token_file)
    async with app.run_test(size=TERMINAL_SIZE):
        await _until(
            lambda: (
                sum(
                    client.status.state is AgentState.OK
                    for client in app.clients.values()
                )
                == len(ports) - slow
            ),
            60,
        )
        # Wait until the slow ones show as slow (their requests are in flight).
        await _until(
            lambda: (
                sum(
                    client.status.state is AgentState.SLOW
                    for client in app.clients.values()
                )
                >= slow
            ),
            30,
        )
        await asyncio.sleep(3.0)  # the fast agents' first loads are done
        latencies = await _key_latencies(app, presses)
    return {
        "key_median_ms": 1000 * statistics.median(latencies[:-1]),
        "key_max_ms": 1000 * max(latencies[:-1]),
        "command_ms": 1000 * latencies[-1],
    }


# (label, key in the measured dict, unit, target below which the figure must
# stay at --agents agents, or None for a figure without a target).
FIGURES = (
    ("first complete fleet view", "first_view_seconds", "s", FIRST_VIEW_TARGET_SECONDS),
    ("CPU at steady state", "cpu_percent", "% of one core", CPU_TARGET_PERCENT),
    ("key to handled key, median", "key_median_ms", "ms", None),
    ("key to handled key, max", "key_max_ms", "ms", None),
    ("':runs' command to Runs screen", "command_ms", "ms", None),
)


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=200, help="Simulated agents.")
    parser.add_argument(
        "--slow", type=int, default=20, help="Agents that respond after 20 seconds."
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="Steady-state CPU window, seconds."
    )
    parser.add_argument(
        "--presses", type=int, default=40, help="Key presses per latency sample."
    )
    return parser.parse_args()


def _run_all(args: argparse.Namespace, token_file: Path) -> tuple[dict, dict, dict]:
    with SimulatedFleet(1) as ports:
        baseline = asyncio.run(_measure(ports, token_file, args.seconds, args.presses))
    with SimulatedFleet(args.agents) as ports:
        fleet = asyncio.run(_measure(ports, token_file, args.seconds, args.presses))
    with SimulatedFleet(args.agents, slow=args.slow) as ports:
        slow = asyncio.run(
            _measure_with_slow(ports, args.slow, token_file, args.presses)
        )
    return baseline, fleet, slow


def _figures(
    args: argparse.Namespace, baseline: dict, fleet: dict, slow: dict
) -> list[Figure]:
    """Return every figure against the same console watching one agent."""
    figures = []
    for label, key, unit, target in FIGURES:
        figures.append(
            Figure(
                f"{label}, {args.agents} agents",
                fleet[key],
                baseline[key],
                unit,
                "" if target is None else f"< {target:g} {unit}",
                None if target is None else fleet[key] < target,
            )
        )
    for label, key, unit, _target in FIGURES[2:]:
        figures.append(
            Figure(
                f"{label}, {args.agents} agents, {args.slow} slow",
                slow[key],
                baseline[key],
                unit,
                "",
                None,
            )
        )
    return figures


def main() -> int:
    args = _parse_arguments()
    sys.path.insert(0, str(REPO_ROOT))
    # The console logs retries of the slow agents; keep them off this output.
    logging.getLogger().addHandler(logging.NullHandler())
    with tempfile.TemporaryDirectory() as directory:
        token_file = Path(directory) / "token"
        token_file.write_text("bench-token\n")
        baseline, fleet, slow = _run_all(args, token_file)
    print(
        f"console against {args.agents} simulated agents on loopback, "
        f"{args.slow} of them responding after {SLOW_DELAY_SECONDS:.0f} s in "
        f"the 'slow' figures; {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    return report("console_fleet", _figures(args, baseline, fleet, slow))


if __name__ == "__main__":
    sys.exit(main())
