"""Runs, alerts, audit and read-only flows against the fake agent."""

from __future__ import annotations

from pathlib import Path

from console_helpers import build_app, screen_text, wait_until
from fake_agent import FakeAgent

from console.screens import (
    AlertsScreen,
    AuditScreen,
    ReasonDialog,
    RunLogScreen,
    RunsScreen,
)
from console.widgets import ResourceTable


async def open_view(app, pilot, command: str, table_id: str) -> ResourceTable:
    await pilot.press("colon", *command, "enter")
    await pilot.pause()
    table = app.screen.query_one(f"#{table_id}", ResourceTable)
    await wait_until(pilot, lambda: table.row_count > 0, what=table_id)
    await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role is not None)
    return table


async def test_trigger_job(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    agent.runs[2]["state"] = "succeeded"
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "runs", "runs")
        await pilot.press("tab")  # the jobs table
        assert app.screen.main_table.id == "jobs"

        await pilot.press("t")
        assert "Trigger a run of job shuttle on gpu-a" in screen_text(app)
        await pilot.press(*"manual check", "enter")

        await wait_until(pilot, lambda: len(agent.runs) == 4)
        assert agent.runs[-1]["requested_by"] == "alice"
        assert agent.audit[-1]["reason"] == "manual check"
        runs = app.screen.query_one("#runs", ResourceTable)
        await wait_until(pilot, lambda: runs.shown_keys[0] == "gpu-a\t8")


async def test_cancel_running_run(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        runs = await open_view(app, pilot, "runs", "runs")
        assert runs.selected_key == "gpu-a\t7"  # running runs first

        await pilot.press("c")
        await pilot.press(*"wrong data", "enter")

        await wait_until(pilot, lambda: agent.runs[2]["state"] == "cancelled")
        await wait_until(
            pilot, lambda: "cancelled" in runs.cell_text("gpu-a\t7", "STATE")
        )


async def test_cancel_disabled_for_finished_run(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        runs = await open_view(app, pilot, "runs", "runs")
        runs.select_key("gpu-a\t6")
        await pilot.pause()

        assert app.screen.check_action("cancel", ()) is None
        await pilot.press("c")
        await pilot.pause()
        assert not isinstance(app.screen, ReasonDialog)
        assert agent.runs[1]["state"] == "succeeded"


async def test_log_follows_running_run(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "runs", "runs")

        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, RunLogScreen)
        log = app.screen.query_one("#log")
        await wait_until(pilot, lambda: log.line_count >= 12)
        assert "epoch 12" in "\n".join(log.lines)

        agent.logs[7] += "epoch 13 loss 0.0380 validation_loss 0.0450\n"
        await wait_until(pilot, lambda: any("epoch 13" in line for line in log.lines))
        offsets = [
            path for method, path in agent.requests if path.endswith("/runs/7/log")
        ]
        assert len(offsets) >= 2

        await pilot.press("c")
        await pilot.press("enter")
        await wait_until(pilot, lambda: any("cancelled" in line for line in log.lines))
        await wait_until(pilot, lambda: app.screen.run_state == "cancelled")
        assert app.screen.check_action("cancel", ()) is None


async def test_acknowledge_alert(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        alerts = await open_view(app, pilot, "alerts", "alerts")
        assert isinstance(app.screen, AlertsScreen)
        assert alerts.selected_key == "gpu-a\t3"

        await pilot.press("k")
        await pilot.press(*"replacing the card", "enter")

        await wait_until(pilot, lambda: agent.alerts[2]["acknowledged_by"] == "alice")
        await wait_until(pilot, lambda: "gpu-a\t3" not in alerts.shown_keys)
        await pilot.press("o")  # show acknowledged alerts too
        await pilot.pause()
        assert alerts.cell_text("gpu-a\t3", "ACK") == "✓ alice"


async def test_viewer_sees_actions_disabled(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="viewer-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "alerts", "alerts")

        assert app.screen.check_action("acknowledge", ()) is None
        assert "needs the operator role; your token 'vera'" in screen_text(app)
        await pilot.press("k")
        await pilot.pause()
        assert agent.alerts[2]["acknowledged_by"] is None


async def test_audit_verify_and_incremental_fetch(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="viewer-token")
    async with app.run_test(size=(100, 30)) as pilot:
        audit = await open_view(app, pilot, "audit", "audit")
        assert isinstance(app.screen, AuditScreen)
        # The first fetch covers the last 7 days: the entry of 9 days ago is
        # left out.
        await wait_until(pilot, lambda: audit.row_count == 5)
        assert "gpu-a\t1" not in audit.shown_keys

        await pilot.press("v")
        await wait_until(pilot, lambda: "✓ 6 entries verify" in screen_text(app))

        agent._record("alice", "run.cancel", "run/9", "late")
        await wait_until(pilot, lambda: audit.row_count == 6)
        queries = [
            request for request in agent.requests if request == ("GET", "/api/v1/audit")
        ]
        assert len(queries) >= 2
        assert audit.shown_keys[0] == "gpu-a\t7"


async def test_audit_filter_by_actor(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="viewer-token")
    async with app.run_test(size=(100, 30)) as pilot:
        audit = await open_view(app, pilot, "audit", "audit")
        await wait_until(pilot, lambda: audit.row_count == 5)

        await pilot.press("slash", *"carol", "enter")
        await pilot.pause()

        assert audit.shown_keys == ["gpu-a\t2"]


async def test_readonly_hides_and_refuses_actions(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="admin-token", readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "releases", "releases")
        footer_keys = set(app.screen.active_bindings)
        text = screen_text(app)

        for key in ("a", "x", "p", "A", "b"):
            assert key not in footer_keys, key
        assert "read-only" in text
        for key in ("a", "x", "p", "A", "b"):
            await pilot.press(key)
        await pilot.press("colon", *"runs", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("t", "c")
        await pilot.pause()

        assert not isinstance(app.screen, ReasonDialog)
        assert not any(method == "POST" for method, _path in agent.requests)


async def test_readonly_client_refuses_posts(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="admin-token", readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        app.act(
            "gpu-a",
            "rollback",
            "shuttle",
            "/api/v1/models/shuttle/rollback",
            {"reason": "x"},
        )
        await wait_until(
            pilot,
            lambda: any("read-only" in n.message for n in app._notifications),
        )

        assert not any(method == "POST" for method, _path in agent.requests)
