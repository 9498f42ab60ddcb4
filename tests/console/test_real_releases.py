"""Release flows through the console against a real agent and its serving worker.

Versions are registered straight into the store (serving_helpers), so no
training runs; the agent's release controller and serving worker are real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from console_helpers import entry_for, screen_text, wait_until
from harness import agent_cli, wait_for

from console.app import RigdeckApp
from console.screens import ReasonDialog, ReleasesScreen
from console.widgets import ResourceTable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent" / "serving"))

from serving_helpers import FAST_SERVING, add_version, model_toml  # noqa: E402

from store import Store  # noqa: E402

pytestmark = pytest.mark.slow

RELEASE_POLICY = "canary_weight = 0.25\nwindow_seconds = 3600\n"


def agent_with_versions(agent_factory, tmp_path: Path, versions: int):
    """Start an agent whose model ``m`` has ``versions`` versions and no deployment."""
    directory = tmp_path / "agent"
    (directory / "data").mkdir(parents=True)
    store = Store(directory / "data" / "store.db")
    try:
        for seed in range(1, versions + 1):
            add_version(store, directory / "data", "m", seed=seed)
    finally:
        store.close()
    return agent_factory(
        extra_config=FAST_SERVING + model_toml("m", RELEASE_POLICY),
        directory=directory,
    )


def token(agent, name: str, role: str) -> str:
    return agent_cli(
        agent.config, "token", "create", name, "--role", role
    ).stdout.strip()


def request_release(agent, version: int, reason: str = "test") -> int:
    with agent.client("operator") as operator:
        response = operator.post(
            "/api/v1/releases",
            json={"model": "m", "version": version, "reason": reason},
        )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def approve(agent, release_id: int) -> dict:
    with agent.client("approver") as approver:
        response = approver.post(
            f"/api/v1/releases/{release_id}/approve", json={"reason": "ok"}
        )
    assert response.status_code == 200, response.text
    return response.json()


def release_state(agent, release_id: int) -> str:
    with agent.client("viewer") as viewer:
        return viewer.get(f"/api/v1/releases/{release_id}").json()["state"]


def deployment(agent) -> dict:
    with agent.client("viewer") as viewer:
        return viewer.get("/api/v1/deployments").json()["items"][0]


def console_on(tmp_path: Path, agent, secret: str) -> RigdeckApp:
    return RigdeckApp(
        [entry_for(tmp_path, "real", agent.url, secret)], poll_seconds=0.5
    )


async def open_releases(app, pilot) -> ResourceTable:
    await pilot.press("colon", *"releases", "enter")
    await pilot.pause()
    assert isinstance(app.screen, ReleasesScreen)
    table = app.screen.query_one("#releases", ResourceTable)
    await wait_until(pilot, lambda: table.row_count > 0, timeout=20, what="releases")
    await wait_until(
        pilot, lambda: app.clients["real"].identity.role is not None, timeout=20
    )
    return table


async def answer(pilot, reason: str) -> None:
    assert isinstance(pilot.app.screen, ReasonDialog)
    await pilot.press(*reason, "enter")
    await pilot.pause()


async def test_approve_then_promote_canary(tmp_path: Path, agent_factory):
    agent = agent_with_versions(agent_factory, tmp_path, versions=2)
    approve(agent, request_release(agent, 1))
    second = request_release(agent, 2)
    app = console_on(tmp_path, agent, agent.tokens["approver"])
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        assert table.selected_key == f"real\t{second}"

        await pilot.press("a")
        await answer(pilot, "gates pass")
        wait_for(lambda: release_state(agent, second) == "canary", timeout=30)
        await wait_until(
            pilot,
            lambda: "canary" in table.cell_text(f"real\t{second}", "STATE"),
            timeout=30,
        )
        await wait_until(
            pilot,
            lambda: "stable v1" in screen_text(app),
            timeout=20,
            what="the canary figures",
        )

        await pilot.press("p")
        await answer(pilot, "healthy")

        wait_for(lambda: release_state(agent, second) == "promoted", timeout=30)
        assert deployment(agent)["stable_version"] == 2


async def test_reject_with_reason(tmp_path: Path, agent_factory):
    agent = agent_with_versions(agent_factory, tmp_path, versions=1)
    pending = request_release(agent, 1)
    app = console_on(tmp_path, agent, agent.tokens["approver"])
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)

        await pilot.press("x")
        await answer(pilot, "not this week")

        wait_for(lambda: release_state(agent, pending) == "rejected", timeout=20)
    with agent.client("viewer") as viewer:
        release = viewer.get(f"/api/v1/releases/{pending}").json()
    assert release["approvals"][0]["decision"] == "reject"
    assert release["approvals"][0]["reason"] == "not this week"


async def test_requester_cannot_approve_on_real_agent(tmp_path: Path, agent_factory):
    agent = agent_with_versions(agent_factory, tmp_path, versions=1)
    rita = token(agent, "rita", "approver")
    with httpx.Client(
        base_url=agent.url, headers={"Authorization": f"Bearer {rita}"}, timeout=30
    ) as client:
        created = client.post(
            "/api/v1/releases", json={"model": "m", "version": 1, "reason": "mine"}
        ).json()
    app = console_on(tmp_path, agent, rita)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        # No whoami route: the name comes from the token list's 403.
        await wait_until(
            pilot, lambda: app.clients["real"].identity.name == "rita", timeout=20
        )
        await pilot.pause(0.5)

        assert app.screen.check_action("approve", ()) is None
        assert "you requested this release" in screen_text(app)
        await pilot.press("a")
        await pilot.pause()

        assert not isinstance(app.screen, ReasonDialog)
    assert release_state(agent, created["id"]) == "pending"


async def test_abort_canary_on_real_agent(tmp_path: Path, agent_factory):
    agent = agent_with_versions(agent_factory, tmp_path, versions=2)
    approve(agent, request_release(agent, 1))
    second = request_release(agent, 2)
    approve(agent, second)
    wait_for(lambda: release_state(agent, second) == "canary", timeout=30)
    app = console_on(tmp_path, agent, agent.tokens["approver"])
    async with app.run_test(size=(100, 30)) as pilot:
        table = await open_releases(app, pilot)
        table.select_key(f"real\t{second}")
        await pilot.pause()

        await pilot.press("A")
        await answer(pilot, "latency")

        wait_for(lambda: release_state(agent, second) == "aborted", timeout=30)
    assert deployment(agent)["canary_version"] is None
    assert deployment(agent)["stable_version"] == 1


async def test_rollback_on_real_agent(tmp_path: Path, agent_factory):
    agent = agent_with_versions(agent_factory, tmp_path, versions=2)
    approve(agent, request_release(agent, 1))
    second = request_release(agent, 2)
    approve(agent, second)
    wait_for(lambda: release_state(agent, second) == "canary", timeout=30)
    with agent.client("approver") as approver:
        approver.post(f"/api/v1/releases/{second}/promote", json={"reason": "ok"})
    wait_for(lambda: deployment(agent)["stable_version"] == 2, timeout=30)
    app = console_on(tmp_path, agent, agent.tokens["operator"])
    async with app.run_test(size=(100, 30)) as pilot:
        await open_releases(app, pilot)
        await wait_until(
            pilot, lambda: app.data["real"].deployment("m") is not None, timeout=30
        )

        await pilot.press("b")
        await pilot.pause()
        text = screen_text(app)
        assert "leaves      m v2" in text
        assert "returns to  m v1" in text
        await answer(pilot, "v2 misbehaves")

        wait_for(lambda: deployment(agent)["stable_version"] == 1, timeout=30)
    with agent.client("viewer") as viewer:
        entries = viewer.get("/api/v1/audit", params={"limit": 1000}).json()["items"]
    assert any(entry["reason"] == "v2 misbehaves" for entry in entries)
