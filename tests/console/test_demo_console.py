"""The UI demo's guidance: the banner, its notifications, and WaitForUser.

The console runs on the fake agent; the demo loop itself is not started
(test_demo_headless.py runs it on real agents).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from console_helpers import build_app, wait_until
from fake_agent import NOW, FakeAgent
from test_release_flows import notifications, open_releases, release

from console.demo import _demo_app
from console.demo.people import DemoHost, WaitForUser
from console.screens import ReasonDialog
from console.widgets import ResourceTable


def demo_app(tmp_path: Path, agent: FakeAgent):
    plain = build_app(tmp_path, [agent])
    return _demo_app(
        plain._entries, transports={agent.name: agent.transport}, clock=plain.clock
    )


def static_text(app, selector: str) -> str:
    return str(app.screen.query_one(selector).render())


def banner_of(app) -> str:
    banner = app.screen.query_one("#banner")
    return str(banner.render()) if banner.display else ""


async def test_banner_shows_step_and_turn(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = demo_app(tmp_path, agent)
    async with app.run_test(size=(100, 30)) as pilot:
        assert banner_of(app) == ""

        app.show("  12.0 s  gpu-a: version 1 trained: accuracy 0.99")
        await pilot.pause()
        assert banner_of(app) == "demo: 12.0 s gpu-a: version 1 trained: accuracy 0.99"

        app.instruct("a", "approve release 5 (shuttle v5 on gpu-a)")
        app.instruct("b", "approve release 1 (phishing v1 on gpu-b)")
        app.show("  20.0 s  gpu-b: version 1 live: release 1")
        await pilot.pause()
        # A step of the loop does not hide what the user must do.
        assert banner_of(app) == (
            "▶ Your turn: approve release 5 (shuttle v5 on gpu-a)\n"
            "▶ Your turn: approve release 1 (phishing v1 on gpu-b)"
        )

        await open_releases(app, pilot)
        app.instruct("b", None)
        await pilot.pause()
        assert banner_of(app) == "▶ Your turn: approve release 5 (shuttle v5 on gpu-a)"

        app.instruct("a", None)
        await pilot.pause()
        # The step just done, not the older step of the loop.
        assert banner_of(app) == (
            "demo: ✓ approve release 5 (shuttle v5 on gpu-a): done."
        )
        assert any(
            m.startswith("Your turn: approve release 5") for m in notifications(app)
        )


async def test_demo_notifications_spare_dialogs(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = demo_app(tmp_path, agent)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)
        before = len(notifications(app))

        app.instruct("b", "approve release 1 (phishing v1 on gpu-b)")
        app.show("  30.0 s  gpu-a: drift detected")
        await pilot.pause()

        assert len(notifications(app)) == before
        await pilot.press("escape")
        await pilot.pause()
        assert banner_of(app).startswith("▶ Your turn: approve release 1")

        assert not isinstance(app.screen, ReasonDialog)
        app.instruct("c", "promote release 4 (shuttle v4)")
        await pilot.pause()
        assert any("promote release 4" in m for m in notifications(app))
        await pilot.press("a")  # a dialog clears the notifications shown
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)
        assert notifications(app) == []


async def test_banner_takes_loop_steps_silently(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = demo_app(tmp_path, agent)
    async with app.run_test(size=(100, 30)) as pilot:
        app.show("  30.0 s  gpu-a: drift detected")
        await pilot.pause()

        assert banner_of(app) == "demo: 30.0 s gpu-a: drift detected"
        assert not any("drift detected" in m for m in notifications(app))


def fake_host(agent: FakeAgent) -> DemoHost:
    return DemoHost(
        name=agent.name,
        model="shuttle",
        url=f"http://{agent.name}.test",
        config=Path("agent.toml"),
        workdir=Path("."),
        source="river:shuttle",
        held_out_from=0,
        operator_token="operator-token",
        approver_token="approver-token",
        transport=agent.transport,
    )


async def wait_for(condition, description: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {description}")


@pytest.mark.parametrize(
    ("step", "release_id", "left_to"),
    [("approve", 5, "canary"), ("promote", 4, "promoted")],
)
async def test_wait_for_user_until_done(step: str, release_id: int, left_to: str):
    agent = FakeAgent("gpu-a")
    messages: list[str | None] = []
    person = WaitForUser(lambda key, message: messages.append(message))
    waiting = asyncio.create_task(
        getattr(person, step)(fake_host(agent), release(agent, release_id))
    )
    await wait_for(lambda: messages, "the instruction")
    assert f"release {release_id} " in messages[0]
    await asyncio.sleep(0.1)
    assert not waiting.done()

    release(agent, release_id)["state"] = left_to
    await asyncio.wait_for(waiting, 5)
    assert messages[-1] is None


async def test_wait_for_user_roll_back():
    agent = FakeAgent("gpu-a")
    messages: list[str | None] = []
    person = WaitForUser(lambda key, message: messages.append(message))
    waiting = asyncio.create_task(person.roll_back(fake_host(agent)))
    await wait_for(lambda: messages, "the instruction")
    assert messages[0].startswith("roll back shuttle from version 3: ")
    await asyncio.sleep(0.1)
    assert not waiting.done()

    agent.deployments[1]["stable_version"] = 2
    await asyncio.wait_for(waiting, 5)
    assert messages[-1] is None


async def test_releases_cursor_follows_new_pending(
    tmp_path: Path,
):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        table: ResourceTable = await open_releases(app, pilot)
        table.select_key("gpu-a\t3")  # promoted, finished
        await pilot.pause()
        release(agent, 5)["state"] = "rejected"
        agent.releases.append({**release(agent, 5), "id": 6, "state": "pending"})
        app.poll_now()

        await wait_until(pilot, lambda: table.selected_key == "gpu-a\t6")


async def test_releases_cursor_after_approval(
    tmp_path: Path,
):
    agent = FakeAgent("gpu-a")
    newer = {"id": 6, "model": "iris", "created_at": NOW - 300}
    agent.releases.append({**release(agent, 5), **newer})
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        table: ResourceTable = await open_releases(app, pilot)
        await wait_until(pilot, lambda: app.clients["gpu-a"].identity.role)
        assert table.selected_key == "gpu-a\t5"  # the oldest pending first

        await pilot.press("a")
        await pilot.press(*"ok", "enter")

        await wait_until(pilot, lambda: release(agent, 5)["state"] == "canary")
        await wait_until(pilot, lambda: table.selected_key == "gpu-a\t6")


async def test_releases_cursor_stays_on_canary(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        table: ResourceTable = await open_releases(app, pilot)
        table.select_key("gpu-a\t4")  # the canary
        await pilot.pause()
        agent.releases.append({**release(agent, 5), "id": 6, "state": "pending"})
        app.poll_now()

        await wait_until(pilot, lambda: "gpu-a\t6" in table.shown_keys)
        assert table.selected_key == "gpu-a\t4"


async def test_releases_state_column_grows(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    for item in agent.releases:
        # Finished states keep the rows in the same order when one changes.
        item["state"] = "aborted"
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        table: ResourceTable = await open_releases(app, pilot)
        release(agent, 1)["state"] = "rolled_back"
        app.poll_now()

        await wait_until(
            pilot, lambda: "rolled_back" in table.cell_text("gpu-a\t1", "STATE")
        )
        assert table.columns["STATE"].content_width >= len("↩ rolled_back")


async def test_models_live_error_rate(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    started = time.monotonic()
    # A clock that moves, for the live figures' refresh interval to pass.
    app = build_app(tmp_path, [agent], clock=lambda: NOW + time.monotonic() - started)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"models", "enter")
        await pilot.pause()
        models = app.screen.query_one("#models", ResourceTable)
        await wait_until(pilot, lambda: models.row_count == 2)
        await wait_until(
            pilot, lambda: models.cell_text("gpu-a\tshuttle", "ERR 5m") != "-"
        )
        assert models.cell_text("gpu-a\tshuttle", "ERR 5m") == "0.47% ◇0.40%"
        assert models.cell_text("gpu-a\tiris", "ERR 5m") == "-"  # no labels

        models.select_key("gpu-a\tshuttle")
        await pilot.press("enter")
        versions = app.screen.query_one("#versions", ResourceTable)
        await wait_until(pilot, lambda: versions.row_count == 5)
        versions.select_key("3")
        await wait_until(
            pilot,
            lambda: (
                "stable v3, last 5 min: 1,500 requests, error rate 0.47% of 375 "
                "labelled rows, p95 3.1 ms" in static_text(app, "#version-details")
            ),
        )

        agent.live["shuttle"]["stable"]["error_rate"] = 0.0792
        await wait_until(
            pilot,
            lambda: models.cell_text("gpu-a\tshuttle", "ERR 5m") == "7.92% ◇0.40%",
            timeout=15,
        )


async def test_releases_live_release_figures(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent])
    async with app.run_test(size=(100, 30)) as pilot:
        table: ResourceTable = await open_releases(app, pilot)
        table.select_key("gpu-a\t3")  # shuttle v3, live
        app.poll_now()

        await wait_until(
            pilot,
            lambda: (
                "serving v3, last 5 min: 1,500 requests, error rate 0.47%"
                in static_text(app, "#release-details")
            ),
        )
        assert ("GET", "/api/v1/deployments/shuttle/live") in agent.requests
