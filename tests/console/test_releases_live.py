"""The Releases screen marks the one promoted release each model serves now."""

from __future__ import annotations

from console.resources import AgentData
from console.screens.releases import live_release_ids, state_text


def _release(id_: int, version: int, state: str = "promoted") -> dict:
    return {
        "id": id_,
        "model": "shuttle",
        "version": version,
        "state": state,
        "created_at": float(id_),
    }


def test_newest_promoted_release_is_live() -> None:
    data = AgentData(
        releases=[_release(1, 1), _release(2, 2)],
        deployments=[{"model": "shuttle", "stable_version": 2}],
    )

    assert live_release_ids(data) == {2}


def test_rollback_makes_the_older_release_live() -> None:
    data = AgentData(
        releases=[_release(1, 1), _release(2, 2, "rolled_back")],
        deployments=[{"model": "shuttle", "stable_version": 1}],
    )

    assert live_release_ids(data) == {1}


def test_roll_forward_to_a_version_released_twice() -> None:
    data = AgentData(
        releases=[_release(1, 1), _release(2, 2), _release(3, 2)],
        deployments=[{"model": "shuttle", "stable_version": 2}],
    )

    assert live_release_ids(data) == {3}


def test_no_deployment_nothing_live() -> None:
    data = AgentData(releases=[_release(1, 1)], deployments=[])

    assert live_release_ids(data) == set()


def test_state_texts() -> None:
    assert state_text("promoted", live=True).plain == "★ live"
    assert state_text("promoted").plain == "○ superseded"
    assert state_text("pending").plain == "! pending"
