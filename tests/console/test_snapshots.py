"""Snapshots of every screen at 100x30 and 80x24, on fixed data and a fixed clock.

Update them with ``pytest tests/console/test_snapshots.py --snapshot-update``
and look at the SVGs under ``__snapshots__`` before committing.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from console_helpers import build_app, wait_until
from fake_agent import FakeAgent

from console import resources
from console.widgets import ResourceTable

SIZES = [pytest.param((100, 30), id="100x30"), pytest.param((80, 24), id="80x24")]


def fleet_agents() -> list[FakeAgent]:
    second = FakeAgent("gpu-b")
    second.host["gpu"] = {
        "status": "unavailable",
        "reason": "driver_not_loaded",
        "message": "The NVIDIA driver is not loaded.",
        "gpus": [],
    }
    second.alerts = []
    return [FakeAgent("gpu-a"), second]


def failing(error: type[httpx.TransportError], message: str) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return httpx.MockTransport(handler)


def rows_shown(app, table_id: str, count: int):
    def check() -> bool:
        tables = app.screen.query(f"#{table_id}")
        return bool(tables) and tables.first(ResourceTable).row_count == count

    return check


async def open_view(pilot, command: str) -> None:
    await pilot.press("colon", *command, "enter")
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES)
def test_fleet(snap_compare, tmp_path: Path, size):
    dead = {"gpu-c": failing(httpx.ConnectError, "Connection refused")}
    app = build_app(tmp_path, [*fleet_agents(), FakeAgent("gpu-c")], transports=dead)

    async def run_before(pilot) -> None:
        await wait_until(
            pilot,
            lambda: (
                all(
                    kind in app.data[name].fetched_at
                    for name in ("gpu-a", "gpu-b")
                    for kind in (resources.HOST, *resources.FLEET_KINDS)
                )
                and app.clients["gpu-c"].status.failures > 0
            ),
        )
        table = app.screen.query_one("#fleet", ResourceTable)
        await wait_until(pilot, lambda: table.cell_text("gpu-b", "ALERTS") == "0")

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_host(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])

    async def run_before(pilot) -> None:
        await open_view(pilot, "host gpu-a")
        await wait_until(
            pilot,
            lambda: (
                all(
                    resources.TELEMETRY_PREFIX + metric in app.data["gpu-a"].fetched_at
                    for metric in resources.GPU_METRICS
                )
                and resources.SERVING in app.data["gpu-a"].fetched_at
            ),
        )
        await wait_until(pilot, lambda: len(app.screen.query("GpuPanel")) == 3)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_runs(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "runs")
        await wait_until(pilot, rows_shown(app, "runs", 3))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_run_log(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "runs")
        await wait_until(pilot, rows_shown(app, "runs", 3))
        await pilot.press("l")
        await wait_until(pilot, lambda: app.screen.query_one("#log").line_count >= 12)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_models(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "models")
        await wait_until(pilot, rows_shown(app, "models", 2))
        app.screen.query_one("#models", ResourceTable).select_key("gpu-a\tshuttle")
        await pilot.press("enter")
        await wait_until(pilot, rows_shown(app, "versions", 5))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        app.screen.query_one("#versions", ResourceTable).select_key("4")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_compare(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])

    async def run_before(pilot) -> None:
        await open_view(pilot, "models")
        await wait_until(pilot, rows_shown(app, "models", 2))
        app.screen.query_one("#models", ResourceTable).select_key("gpu-a\tshuttle")
        await pilot.press("enter")
        await wait_until(pilot, rows_shown(app, "versions", 5))
        app.screen.query_one("#versions", ResourceTable).select_key("4")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen.VIEW == "compare")
        await wait_until(pilot, rows_shown(app, "compare", 13))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_releases(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "releases")
        await wait_until(pilot, rows_shown(app, "releases", 5))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_releases_canary(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="approver-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "releases")
        await wait_until(pilot, rows_shown(app, "releases", 5))
        app.screen.query_one("#releases", ResourceTable).select_key("gpu-a\t4")
        await wait_until(pilot, lambda: 4 in app.data["gpu-a"].release_details)
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_rollback_dialog(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "releases")
        await wait_until(pilot, rows_shown(app, "releases", 5))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.press("b")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_drift(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])

    async def run_before(pilot) -> None:
        await open_view(pilot, "drift")
        await wait_until(pilot, rows_shown(app, "monitors", 3))
        await wait_until(pilot, rows_shown(app, "events", 2))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_alerts(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="viewer-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "alerts")
        await wait_until(pilot, rows_shown(app, "alerts", 2))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_audit(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])

    async def run_before(pilot) -> None:
        await open_view(pilot, "audit")
        await wait_until(pilot, rows_shown(app, "audit", 5))

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], token="operator-token")

    async def run_before(pilot) -> None:
        await open_view(pilot, "releases")
        await wait_until(pilot, rows_shown(app, "releases", 5))
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_readonly_fleet(snap_compare, tmp_path: Path, size):
    app = build_app(tmp_path, [FakeAgent("gpu-a")], readonly=True)

    async def run_before(pilot) -> None:
        await open_view(pilot, "releases")
        await wait_until(pilot, rows_shown(app, "releases", 5))
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
