"""Odd bodies from an agent: the console marks them n/a and keeps polling."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from console_helpers import build_app, wait_until
from fake_agent import NOW, FakeAgent

from console import resources
from console.widgets import ResourceTable

FIGURES = {
    "version": 3,
    "requests": 10,
    "rows": 10,
    "server_errors": 0,
    "nonfinite_rows": 0,
    "latency_p95_seconds": 0.01,
    "labelled": 5,
    "label_errors": 1,
    "error_rate": 0.2,
}
ODD_LIVE = {
    "a list": [1, 2, 3],
    "figures that are a string": {"window_seconds": 300, "stable": "x"},
    "a window that is a string": {"window_seconds": "300", "stable": FIGURES},
    "a rate that is a string": {
        "window_seconds": 300,
        "stable": {**FIGURES, "error_rate": "bad"},
    },
    "a version that is a list": {"stable": {**FIGURES, "version": [3]}},
}
ODD_PENDING = {
    "no version": [{"id": 6, "model": "shuttle", "state": "pending"}],
    "a version of None": [
        {"id": 6, "model": "shuttle", "version": None, "state": "pending"}
    ],
    "items that are numbers": [1, 2],
    "a model that is a number": [
        {"id": 6, "model": 5, "version": 6, "state": "pending"}
    ],
}


def answering(agent: FakeAgent, path_ends: str, body, state: str | None = None):
    """Return a transport that returns ``body`` for one route, else as ``agent``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(path_ends) and (
            state is None or request.url.params.get("state") == state
        ):
            return httpx.Response(200, json=body)
        return agent.handle(request)

    return httpx.MockTransport(handle)


def moving_clock():
    started = time.monotonic()
    return lambda: NOW + time.monotonic() - started


@pytest.mark.parametrize("case", list(ODD_LIVE))
async def test_models_odd_live_figures(tmp_path: Path, case: str):
    agent = FakeAgent("gpu-a")
    transport = answering(agent, "/live", ODD_LIVE[case])
    app = build_app(tmp_path, [agent], transports={"gpu-a": transport})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"models", "enter")
        models = app.screen.query_one("#models", ResourceTable)
        await wait_until(pilot, lambda: models.row_count == 2)
        models.select_key("gpu-a\tshuttle")
        await pilot.press("enter")
        await pilot.press("down", "down")  # v3, the stable version

        kind = resources.LIVE_PREFIX + "shuttle"
        await wait_until(pilot, lambda: kind in app.data["gpu-a"].missing)
        assert "unexpected body" in app.data["gpu-a"].missing[kind]
        assert app.is_running
        assert models.cell_text("gpu-a\tshuttle", "ERR 5m") == "-"


async def test_live_figures_default_window(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    body = {"model": "shuttle", "stable": FIGURES, "canary": None}
    transport = answering(agent, "/live", body)
    app = build_app(tmp_path, [agent], transports={"gpu-a": transport})
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"models", "enter")
        models = app.screen.query_one("#models", ResourceTable)
        await wait_until(pilot, lambda: models.row_count == 2)

        await wait_until(
            pilot, lambda: models.cell_text("gpu-a\tshuttle", "ERR 5m") == "20.00%"
        )
        live = app.data["gpu-a"].live["shuttle"]
        assert live["window_seconds"] == resources.LIVE_WINDOW_SECONDS


@pytest.mark.parametrize("case", list(ODD_PENDING))
async def test_fleet_odd_pending_releases(tmp_path: Path, case: str):
    agent = FakeAgent("gpu-a")
    body = {"items": ODD_PENDING[case], "next_cursor": None}
    transport = answering(agent, "/api/v1/releases", body, state="pending")
    app = build_app(
        tmp_path, [agent], transports={"gpu-a": transport}, clock=moving_clock()
    )
    async with app.run_test(size=(100, 30)) as pilot:
        data = app.data["gpu-a"]
        await wait_until(
            pilot, lambda: resources.PENDING_RELEASES in data.missing, what=case
        )
        hosts = agent.requests.count(("GET", "/api/v1/host"))
        await wait_until(
            pilot, lambda: agent.requests.count(("GET", "/api/v1/host")) > hosts
        )

        assert app.is_running
        table = app.screen.query_one("#fleet", ResourceTable)
        assert table.cell_text("gpu-a", "MODELS") == "iris 1, shuttle 3 ◇4"


async def test_releases_screen_release_without_state(
    tmp_path: Path,
):
    agent = FakeAgent("gpu-a")
    del agent.releases[0]["state"]
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"releases", "enter")
        table = app.screen.query_one("#releases", ResourceTable)

        await wait_until(pilot, lambda: table.row_count == 5)
        assert table.cell_text("gpu-a\t1", "STATE") == "? unknown"
        assert app.is_running
