"""Release flows against the fake agent: approve, reject, four-eyes, promote,
abort, roll back, request.

The same flows run against a real agent in test_real_releases.py. These
add what a real agent cannot show on demand: a whoami route, a fixed
canary verdict, many releases at once, and a fixed clock.
"""

from __future__ import annotations

from pathlib import Path

from console_helpers import build_app, screen_text, wait_until
from fake_agent import FakeAgent

from console.screens import ReasonDialog, ReleasesScreen
from console.widgets import ResourceTable


async def open_releases(app, pilot) -> ResourceTable:
    await pilot.press("colon", *"releases", "enter")
    await pilot.pause()
    assert isinstance(app.screen, ReleasesScreen)
    table = app.screen.query_one("#releases", ResourceTable)
    await wait_until(pilot, lambda: table.row_count > 0, what="releases")
    return table


async def identified(app, pilot, agent: str = "gpu-a") -> None:
    await wait_until(
        pilot, lambda: app.clients[agent].identity.role is not None, what="the role"
    )


async def answer_dialog(pilot, reason: str) -> None:
    assert isinstance(pilot.app.screen, ReasonDialog)
    await pilot.press(*reason, "enter")
    await pilot.pause()


def release(agent: FakeAgent, release_id: int) -> dict:
    return next(r for r in agent.releases if r["id"] == release_id)


def notifications(app) -> list[str]:
    return [notification.message for notification in app._notifications]


async def test_approve_pending_release(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        await identified(app, pilot)
        assert table.selected_key == "gpu-a\t5"  # pending first

        await pilot.press("a")
        await answer_dialog(pilot, "gates pass")

        await wait_until(pilot, lambda: release(agent, 5)["state"] == "canary")
        assert release(agent, 5)["approvals"][0]["actor"] == "bob"
        assert release(agent, 5)["approvals"][0]["reason"] == "gates pass"
        await wait_until(
            pilot, lambda: "canary" in table.cell_text("gpu-a\t5", "STATE")
        )
        assert agent.audit[-1]["action"] == "release.approve"


async def test_reject_requires_reason(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        await pilot.press("x")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)
        assert "A reason is required" in screen_text(app)
        await answer_dialog(pilot, "f2 still drifts")

        await wait_until(pilot, lambda: release(agent, 5)["state"] == "rejected")
        assert release(agent, 5)["approvals"][0]["decision"] == "reject"


async def test_requester_cannot_approve(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    agent.releases[4]["requested_by"] = "bob"  # bob owns the approver token
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        assert app.screen.check_action("approve", ()) is None
        assert "you requested this release" in screen_text(app)
        await pilot.press("a")
        await pilot.pause()

        assert isinstance(app.screen, ReleasesScreen)
        assert any("you requested this release" in m for m in notifications(app))
        assert release(agent, 5)["state"] == "pending"
        assert not any(method == "POST" for method, _path in agent.requests)


async def test_agent_enforces_four_eyes_when_name_unknown(tmp_path: Path):
    # Without a whoami route an admin token's name stays unknown (the token
    # list returns 200 and names no one), so the console lets the approval
    # through and shows the agent's rejection.
    agent = FakeAgent("gpu-a", whoami=False)
    agent.releases[4]["requested_by"] = "root"
    app = build_app(tmp_path, [agent], token="admin-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)
        assert app.clients["gpu-a"].identity.name is None
        assert app.clients["gpu-a"].identity.role == "admin"

        await pilot.press("a")
        await answer_dialog(pilot, "mine")

        await wait_until(
            pilot, lambda: any("cannot approve it" in m for m in notifications(app))
        )
        assert release(agent, 5)["state"] == "pending"


async def test_role_inferred_without_whoami(tmp_path: Path):
    agent = FakeAgent("gpu-a", whoami=False)
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        identity = app.clients["gpu-a"].identity
        assert (identity.name, identity.role, identity.source) == (
            "alice",
            "operator",
            "inferred",
        )
        assert app.screen.check_action("approve", ()) is None


async def test_promote_canary(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        await identified(app, pilot)
        table.select_key("gpu-a\t4")
        await pilot.pause()
        await wait_until(pilot, lambda: "stable v3" in screen_text(app))

        await pilot.press("p")
        await answer_dialog(pilot, "error rate and p95 as stable")

        await wait_until(pilot, lambda: release(agent, 4)["state"] == "promoted")
        assert agent.deployments[1]["stable_version"] == 4
        assert agent.deployments[1]["canary_version"] is None


async def test_abort_canary(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        await identified(app, pilot)
        table.select_key("gpu-a\t4")
        await pilot.pause()

        await pilot.press("A")
        await answer_dialog(pilot, "latency p95 up 7 %")

        await wait_until(pilot, lambda: release(agent, 4)["state"] == "aborted")
        assert agent.deployments[1]["canary_version"] is None
        assert agent.deployments[1]["stable_version"] == 3


async def test_promote_is_disabled_for_pending_release(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        assert app.screen.check_action("promote", ()) is None
        await pilot.press("p")
        await pilot.pause()

        assert any(
            "promote applies to canary releases" in m for m in notifications(app)
        )
        assert release(agent, 5)["state"] == "pending"


async def test_rollback_confirmation_shows_versions(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        await pilot.press("b")
        await pilot.pause()

        text = screen_text(app)
        assert "Roll back shuttle on gpu-a" in text
        assert "leaves      shuttle v3 (and stops canary v4)" in text
        assert "returns to  shuttle v2" in text
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ReasonDialog)  # a reason is required
        await answer_dialog(pilot, "v3 misclassifies class 4")

        await wait_until(pilot, lambda: agent.deployments[1]["stable_version"] == 2)
        assert agent.audit[-1]["action"] == "model.rollback"
        assert "v3 misclassifies class 4" in agent.audit[-1]["reason"]


async def test_rollback_cancelled_changes_nothing(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        await pilot.press("b")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()

        assert isinstance(app.screen, ReleasesScreen)
        assert agent.deployments[1]["stable_version"] == 3
        assert not any(method == "POST" for method, _path in agent.requests)


async def test_operator_sees_approve_disabled_with_reason(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        assert app.screen.check_action("approve", ()) is None
        assert app.screen.check_action("rollback", ()) is True
        assert (
            "a/x: needs the approver role; your token 'alice' on gpu-a has the "
            "operator role" in screen_text(app)
        )
        await pilot.press("a")
        await pilot.pause()
        assert release(agent, 5)["state"] == "pending"


async def test_pending_releases_of_all_agents_come_first(tmp_path: Path):
    first, second = FakeAgent("gpu-a"), FakeAgent("gpu-b")
    second.releases[4]["state"] = "rejected"
    app = build_app(tmp_path, [first, second])
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        await wait_until(pilot, lambda: table.row_count == 10)

        states = [table.cell_text(key, "STATE") for key in table.shown_keys]

        assert states[0] == "! pending"
        assert states[1:3] == ["◇ canary", "◇ canary"]
        assert "! pending" not in states[1:]


async def test_request_release_from_models(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    agent.releases = agent.releases[:4]
    app = build_app(tmp_path, [agent], token="approver2-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"models", "enter")
        await pilot.pause()
        models = app.screen.query_one("#models", ResourceTable)
        await wait_until(pilot, lambda: models.row_count == 2)
        models.select_key("gpu-a\tshuttle")
        await pilot.press("enter")  # into the versions table
        versions = app.screen.query_one("#versions", ResourceTable)
        await wait_until(pilot, lambda: versions.row_count == 5)
        await identified(app, pilot)
        assert versions.has_focus
        assert versions.selected_key == "5"

        await pilot.press("n")
        await answer_dialog(pilot, "fixes f2 drift")

        await wait_until(pilot, lambda: len(agent.releases) == 5)
        assert agent.releases[-1]["version"] == 5
        assert agent.releases[-1]["requested_by"] == "carol"
        assert agent.releases[-1]["state"] == "pending"


async def test_request_release_disabled_for_failed_gates(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("colon", *"models", "enter")
        await pilot.pause()
        models = app.screen.query_one("#models", ResourceTable)
        await wait_until(pilot, lambda: models.row_count == 2)
        models.select_key("gpu-a\tshuttle")
        await pilot.press("enter")
        versions = app.screen.query_one("#versions", ResourceTable)
        await wait_until(pilot, lambda: versions.row_count == 5)
        versions.select_key("2")
        await pilot.pause()

        assert app.screen.check_action("request_release", ()) is None
        await pilot.press("n")
        await pilot.pause()
        assert any("Its gates failed" in m for m in notifications(app))


async def test_rollback_disabled_without_earlier_version(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    for deployment in agent.deployments:
        deployment.update(canary_version=None, canary_weight=0.0, rollback_version=None)
    app = build_app(tmp_path, [agent], token="operator-token")
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await identified(app, pilot)

        await pilot.press("b")
        await pilot.pause()

        assert not isinstance(app.screen, ReasonDialog)
        assert any(
            "has no earlier stable version to roll back to" in m
            for m in notifications(app)
        )
        assert all(entry["action"] != "model.rollback" for entry in agent.audit)


async def test_canary_figures_scroll_from_keyboard(tmp_path: Path):
    agent = FakeAgent("gpu-a")
    app = build_app(tmp_path, [agent], token="approver-token")
    # Short enough that the canary figures overflow their pane.
    async with app.run_test(size=(80, 18)) as pilot:
        table = await open_releases(app, pilot)
        await identified(app, pilot)
        table.select_key("gpu-a\t4")
        await pilot.pause()
        await wait_until(pilot, lambda: "stable v3" in screen_text(app))
        pane = app.screen.query_one("#release-details-pane")

        await pilot.press("tab")
        await pilot.pause()
        await pilot.press("end")
        await pilot.pause()

        assert app.focused is pane
        assert pane.max_scroll_y > 0
        assert pane.scroll_y == pane.max_scroll_y
