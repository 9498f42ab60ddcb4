"""The console against real ``rigdeck-agent run`` processes on loopback.

These cover host and GPUs (through the fake NVML), jobs, runs and their
logs, trigger and cancel, alerts, audit and the role a token has. The
release flows against a real agent and its serving worker are in
test_real_releases.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from console_helpers import entry_for, screen_text, wait_until

from console.app import RigdeckApp
from console.screens import AlertsScreen, RunLogScreen, RunsScreen
from console.widgets import ResourceTable

pytestmark = pytest.mark.slow

GPUS = {
    "gpus": [
        {"name": "NVIDIA A100-SXM4-80GB", "util": 0.5},
        {"name": "NVIDIA A100-SXM4-80GB", "not_supported": ["power"]},
        {"lost": True},
    ]
}
SLOW_MODEL = """
[training]
cancel_grace_seconds = 2.0

[[models]]
name = "slow"
[models.dataset]
plugin = "counting"
[models.recipe]
plugin = "slow"
params = { seconds = 120 }
[models.schedule]
[models.resources]
"""
EXPLODING_MODEL = SLOW_MODEL.replace('name = "slow"', 'name = "boom"').replace(
    'plugin = "slow"\nparams = { seconds = 120 }', 'plugin = "explode"'
)


def console_on(tmp_path: Path, agent, role: str, **options) -> RigdeckApp:
    entry = entry_for(tmp_path, "real", agent.url, agent.tokens[role])
    options.setdefault("poll_seconds", 0.5)
    return RigdeckApp([entry], **options)


async def open_view(app, pilot, command: str) -> None:
    await pilot.press("colon", *command, "enter")
    await pilot.pause()


async def test_fleet_shows_real_agent(tmp_path: Path, agent_factory):
    agent = agent_factory(env={"RIGDECK_FAKE_NVML": json.dumps(GPUS)})
    app = console_on(tmp_path, agent, "viewer")
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.screen.query_one("#fleet", ResourceTable)
        # The lost GPU raises a critical alert on the agent.
        await wait_until(
            pilot,
            lambda: (
                table.cell_text("real", "ALERTS") == "1 !"
                and table.cell_text("real", "MODELS") not in ("", "-")
            ),
            timeout=20,
            what="the fleet row",
        )

        assert table.cell_text("real", "STATE").startswith("● ok")
        assert table.cell_text("real", "GPU util mem").startswith("2/3")
        # The agent reports no CPU use for a sample now and then: "-".
        assert re.fullmatch(r" *(\d+%|-) +\d+%", table.cell_text("real", "CPU MEM"))
        assert table.cell_text("real", "RUNS") == "0"
        assert table.cell_text("real", "MODELS") == "none"


async def test_host_view_of_real_agent(tmp_path: Path, agent_factory):
    agent = agent_factory(env={"RIGDECK_FAKE_NVML": json.dumps(GPUS)})
    app = console_on(tmp_path, agent, "viewer")
    async with app.run_test(size=(100, 40)) as pilot:
        await open_view(app, pilot, "host real")
        await wait_until(
            pilot, lambda: "GPU 2" in screen_text(app), timeout=20, what="GPU panels"
        )
        text = screen_text(app)

        assert "GPU 0 · NVIDIA A100-SXM4-80GB · ● ok" in text
        assert "- (not_supported)" in text
        assert "✕ lost" in text
        assert "CPU" in text
        assert "MEM" in text
        assert "DISK" in text


async def test_trigger_log_and_cancel_on_real_agent(
    tmp_path: Path, agent_factory, plugin_env
):
    agent = agent_factory(extra_config=SLOW_MODEL, env=plugin_env)
    app = console_on(tmp_path, agent, "operator")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "runs")
        assert isinstance(app.screen, RunsScreen)
        jobs = app.screen.query_one("#jobs", ResourceTable)
        runs = app.screen.query_one("#runs", ResourceTable)
        await wait_until(pilot, lambda: jobs.row_count == 1, timeout=20)
        await wait_until(
            pilot, lambda: app.clients["real"].identity.role == "operator", timeout=20
        )
        app.screen.set_focus(jobs)
        await pilot.pause()

        await pilot.press("t")
        await pilot.press(*"console test", "enter")
        await wait_until(
            pilot,
            lambda: (
                runs.row_count == 1
                and "running" in runs.cell_text(runs.shown_keys[0], "STATE")
            ),
            timeout=30,
            what="the run to start",
        )
        key = runs.shown_keys[0]
        app.screen.set_focus(runs)
        await pilot.pause()

        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, RunLogScreen)
        log = app.screen.query_one("#log")
        await wait_until(pilot, lambda: log.line_count > 0, timeout=20, what="log text")

        await pilot.press("c")
        await pilot.press(*"enough", "enter")
        await wait_until(pilot, lambda: app.screen.run_state == "cancelled", timeout=20)
        await pilot.press("escape")
        await wait_until(
            pilot, lambda: "cancelled" in runs.cell_text(key, "STATE"), timeout=30
        )
        with agent.client("viewer") as client:
            entries = client.get("/api/v1/audit").json()["items"]
        actions = [(e["action"], e["reason"]) for e in entries]
        assert ("job.trigger", "console test") in actions
        assert ("run.cancel", "enough") in actions


async def test_acknowledge_real_alert(tmp_path: Path, agent_factory, plugin_env):
    agent = agent_factory(extra_config=EXPLODING_MODEL, env=plugin_env)
    with agent.client("operator") as client:
        run_id = client.post("/api/v1/jobs/boom/trigger").json()["id"]
    app = console_on(tmp_path, agent, "operator")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "alerts")
        assert isinstance(app.screen, AlertsScreen)
        alerts = app.screen.query_one("#alerts", ResourceTable)
        await wait_until(
            pilot,
            lambda: alerts.row_count == 1,
            timeout=60,
            what=f"the alert of failed run {run_id}",
        )
        await wait_until(pilot, lambda: app.clients["real"].identity.role is not None)

        await pilot.press("k")
        await pilot.press(*"known bad recipe", "enter")

        await wait_until(pilot, lambda: alerts.row_count == 0, timeout=30)
    with agent.client("viewer") as client:
        alert = client.get("/api/v1/alerts").json()["items"][0]
    assert alert["acknowledged_by"].startswith("test-operator")


async def test_viewer_role_read_from_forbidden_message(
    tmp_path: Path, agent_factory, plugin_env
):
    # The agent has no whoami route: the console learns the role from the
    # 403 that the admin-only token list returns.
    agent = agent_factory(extra_config=SLOW_MODEL, env=plugin_env)
    app = console_on(tmp_path, agent, "viewer")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "runs")
        jobs = app.screen.query_one("#jobs", ResourceTable)
        await wait_until(pilot, lambda: jobs.row_count == 1, timeout=20)
        identity = app.clients["real"].identity
        await wait_until(
            pilot,
            lambda: (
                identity.role == "viewer"
                or app.clients["real"].identity.role == "viewer"
            ),
            timeout=20,
        )
        app.screen.set_focus(jobs)
        await pilot.pause()

        assert app.screen.check_action("trigger", ()) is None
        assert "needs the operator role" in screen_text(app)
        await pilot.press("t")
        await pilot.pause()
        with agent.client("viewer") as client:
            assert client.get("/api/v1/runs").json()["items"] == []


async def test_readonly_against_real_agent(tmp_path: Path, agent_factory, plugin_env):
    agent = agent_factory(extra_config=SLOW_MODEL, env=plugin_env)
    app = console_on(tmp_path, agent, "admin", readonly=True)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "runs")
        jobs = app.screen.query_one("#jobs", ResourceTable)
        await wait_until(pilot, lambda: jobs.row_count == 1, timeout=20)
        app.screen.set_focus(jobs)
        await pilot.pause()

        assert "t" not in app.screen.active_bindings
        await pilot.press("t", "enter")
        await pilot.pause()

        with agent.client("viewer") as client:
            assert client.get("/api/v1/runs").json()["items"] == []


async def test_audit_verify_on_real_agent(tmp_path: Path, agent_factory):
    agent = agent_factory()
    app = console_on(tmp_path, agent, "viewer")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_view(app, pilot, "audit")
        audit = app.screen.query_one("#audit", ResourceTable)
        await wait_until(
            pilot,
            lambda: audit.row_count == 4,
            timeout=20,
            what="the token.create entries",
        )

        await pilot.press("v")

        await wait_until(
            pilot, lambda: "✓ 4 entries verify" in screen_text(app), timeout=30
        )
