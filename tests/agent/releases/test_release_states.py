"""The release state machine: every action outside the table is refused."""

from __future__ import annotations

import pytest

from agent.releases import InvalidTransition
from store import audit
from store import releases as release_rows
from store.releases import (
    TRANSITIONS,
    InvalidReleaseTransition,
    ReleaseAction,
    ReleaseState,
    target_state,
)

# The actions a person can take through the API, and the controller method
# that carries each out.
API_ACTIONS = {
    ReleaseAction.APPROVE: "approve",
    ReleaseAction.REJECT: "reject",
    ReleaseAction.PROMOTE: "promote",
    ReleaseAction.ABORT: "abort",
}


def test_table_lists_every_state():
    assert set(TRANSITIONS) == set(ReleaseState)
    assert release_rows.FINAL_STATES == (
        ReleaseState.REJECTED,
        ReleaseState.ABORTED,
        ReleaseState.ROLLED_BACK,
    )


@pytest.mark.parametrize("state", list(ReleaseState))
@pytest.mark.parametrize("action", list(ReleaseAction))
def test_table_refuses_actions_it_lacks(state, action):
    expected = TRANSITIONS[state].get(action)

    if expected is not None:
        assert target_state(7, state, action) == expected
        return
    with pytest.raises(InvalidReleaseTransition) as raised:
        target_state(7, state, action)
    assert raised.value.current == state
    assert raised.value.action == action
    assert str(raised.value).startswith(
        f"Release 7 is {state}, so it cannot {action}: "
    )


def test_refusal_names_needed_states():
    with pytest.raises(InvalidReleaseTransition) as raised:
        target_state(3, "pending", "promote")

    assert str(raised.value) == (
        "Release 3 is pending, so it cannot promote: promote needs a release that is "
        "canary. From pending the allowed actions are: approve, reject."
    )


def _release_in_state(setup, state: ReleaseState) -> dict:
    """A release of version 2 forced into ``state`` through the store."""
    setup.add_version()
    setup.add_version()
    with setup.store.write() as db:
        release = release_rows.insert_release(
            db,
            model="m",
            version=2,
            requested_by="olga",
            reason="test",
            approvals_required=1,
            canary_weight=0.25,
        )
        # A path through the table to each state.
        paths = {
            ReleaseState.PENDING: [],
            ReleaseState.APPROVED: ["approve"],
            ReleaseState.REJECTED: ["reject"],
            ReleaseState.CANARY: ["approve", "start_canary"],
            ReleaseState.PROMOTED: ["approve", "start_canary", "promote"],
            ReleaseState.ABORTED: ["approve", "abort"],
            ReleaseState.ROLLED_BACK: [
                "approve",
                "start_canary",
                "promote",
                "roll_back",
            ],
        }
        for action in paths[state]:
            release = release_rows.transition(
                db, release["id"], action, actor="test", reason=None
            )
    assert release["state"] == state
    return release


@pytest.mark.parametrize("state", list(ReleaseState))
def test_controller_refuses_illegal_actions(releases, state):
    setup = releases()
    release = _release_in_state(setup, state)
    entries_before = len(audit.list_entries(setup.store.db, limit=1000))

    for action, method in API_ACTIONS.items():
        if action in TRANSITIONS[state]:
            continue
        with pytest.raises(InvalidTransition) as raised:
            getattr(setup.controller, method)(release["id"], "anna", "try it")
        assert f"Release {release['id']} is {state}, so it cannot {action}" in str(
            raised.value
        )

    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == state
    assert after["approvals"] == []
    assert len(audit.list_entries(setup.store.db, limit=1000)) == entries_before
