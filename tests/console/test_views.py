"""What the views derive from agent data: state words, owners, history, drift."""

from __future__ import annotations

from pathlib import Path

from console_helpers import build_app, screen_text, wait_until
from fake_agent import NOW, FakeAgent

from console.client import AgentClient, AgentState
from console.config import AgentEntry
from console.resources import AgentData, merge_series
from console.screens.drift import stats_text
from console.screens.fleet import fleet_row, gpu_cell, models_cell
from console.screens.host import gpu_history, process_owners
from console.widgets import ResourceTable


def test_fleet_states_read_without_colour():
    client = AgentClient(AgentEntry("a", "http://a.test"), clock=lambda: 1000.0)
    expected = {
        AgentState.CONNECTING: "… connecting",
        AgentState.OK: "● ok 40s",
        AgentState.SLOW: "◐ slow 40s",
        AgentState.UNREACHABLE: "✕ unreachable 40s",
    }
    for state, text in expected.items():
        client.status.state = state
        client.status.last_ok_at = 960.0

        assert fleet_row(client, AgentData()).cells[1].plain == text


def test_unknown_values_are_dashes_not_zeros():
    client = AgentClient(AgentEntry("a", "http://a.test"))

    cells = fleet_row(client, AgentData()).cells

    assert [str(cell) for cell in cells[2:]] == ["-", "  -   -", "-", "-", "-"]


def test_models_cell_canary_and_pending():
    data = AgentData(
        deployments=[
            {"model": "shuttle", "stable_version": 3, "canary_version": 4},
            {"model": "iris", "stable_version": 1, "canary_version": None},
        ],
        pending_releases=[
            {"id": 9, "model": "shuttle", "version": 6},
            {"id": 8, "model": "shuttle", "version": 5},
            {"id": 7, "model": "phishing", "version": 1},
        ],
    )

    assert models_cell(data) == "iris 1, phishing - !1, shuttle 3 ◇4 !5 !6"


def test_gpu_cell_short_reasons():
    for reason, label in [
        ("nvml_not_found", "no NVML"),
        ("driver_mismatch", "reboot needed"),
        ("some_new_reason", "some new reason"),
    ]:
        host = {"gpu": {"status": "unavailable", "reason": reason}}
        assert gpu_cell(host).plain == label
    assert len("reboot needed") < 14  # the GPU column, with its gap


async def test_fleet_counts_pending_releases(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(
            pilot, lambda: "1 release waits for approval" in screen_text(app)
        )
        table = app.screen.query_one("#fleet", ResourceTable)
        await wait_until(
            pilot,
            lambda: table.cell_text("gpu-a", "MODELS").endswith("shuttle 3 ◇4 !5"),
        )

        agent.releases[4]["state"] = "rejected"
        app.poll_now()
        await wait_until(pilot, lambda: "waits for approval" not in screen_text(app))


def test_drift_stats_text_means():
    stats = {
        "change_index": 3140,
        "before": {"count": 100, "mean": 46.64, "std": 2.1},
        "after": {"count": 100, "mean": 59.9, "std": 2.3},
        "transformed": {"before_mean": 0.1, "after_mean": 0.9, "z": 12.25},
    }

    assert stats_text(stats) == "mean 46.64 → 59.9 z 12.25"
    assert stats_text({"p_value": 0.0004, "d": 0.21}) == "d 0.21 p_value 0.0004"
    assert stats_text({"a": {"b": 1}}) == "a.b 1"


def test_gpu_processes_are_matched_to_runs_and_serving():
    data = AgentData(
        active_runs=[{"id": 7, "model": "shuttle", "pid": 4242}],
        deployments=[{"model": "shuttle"}, {"model": "iris"}],
        serving={"state": "running", "pid": 3100},
    )

    owners = process_owners(data)

    assert owners == {4242: "run 7 (shuttle)", 3100: "serving worker (iris, shuttle)"}


def test_gpu_history_has_one_value_per_minute():
    data = AgentData()
    data.telemetry["gpu_utilization_ratio"] = merge_series(
        None,
        [{"labels": {"gpu": "0"}, "points": [[NOW - 120, 0.5, 0, 1, 3]]}],
        NOW,
    )

    history = gpu_history(data, 0, NOW)

    assert len(history.utilization_ratio) == 61
    assert history.utilization_ratio[-3] == 0.5
    assert history.utilization_ratio[-1] is None


def test_merge_series_replaces_last_bucket_and_drops_old():
    old = [
        {"labels": {"gpu": "0"}, "points": [[0.0, 1, 1, 1, 1], [NOW - 60, 2, 2, 2, 1]]}
    ]
    new = [
        {"labels": {"gpu": "0"}, "points": [[NOW - 60, 3, 3, 3, 2], [NOW, 4, 4, 4, 1]]}
    ]

    merged = merge_series(old, new, NOW)

    assert merged == [
        {"labels": {"gpu": "0"}, "points": [[NOW - 60, 3, 3, 3, 2], [NOW, 4, 4, 4, 1]]}
    ]


async def test_drift_events_are_fetched_after_the_last_id(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"drift", "enter")
        events = app.screen.query_one("#events", ResourceTable)
        await wait_until(pilot, lambda: events.row_count == 2)

        agent.drift_events.append(
            {**agent.drift_events[-1], "id": 3, "sample_index": 14000, "ts": NOW}
        )
        await wait_until(pilot, lambda: events.row_count == 3)

        assert events.shown_keys[0] == "gpu-a\t3"
        assert "14000" in screen_text(app)


async def test_enter_on_monitor_filters_its_events(tmp_path: Path):
    app = build_app(tmp_path, [FakeAgent("gpu-a")])
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"drift", "enter")
        monitors = app.screen.query_one("#monitors", ResourceTable)
        events = app.screen.query_one("#events", ResourceTable)
        await wait_until(pilot, lambda: monitors.row_count == 3 and events.row_count)

        await pilot.press("enter")  # the f1 monitor: no events

        assert events.filter_text == "shuttle f1"
        assert events.row_count == 0
        assert events.has_focus


async def test_missing_route_shows_na_and_is_retried_slowly(tmp_path: Path):
    agent = FakeAgent("gpu-a", missing_prefixes=("/api/v1/deployments",))
    app = build_app(tmp_path, [agent], poll_seconds=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#fleet", ResourceTable)
        await wait_until(pilot, lambda: table.cell_text("gpu-a", "MODELS") == "n/a")
        hosts_before = agent.requests.count(("GET", "/api/v1/host"))
        await wait_until(
            pilot,
            lambda: agent.requests.count(("GET", "/api/v1/host")) >= hosts_before + 5,
        )

        assert agent.requests.count(("GET", "/api/v1/deployments")) == 1
        assert (
            "No route GET /api/v1/deployments"
            in app.data["gpu-a"].missing["deployments"]
        )
