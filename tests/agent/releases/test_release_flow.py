"""Requests, approvals, canaries and promotion through ReleaseController."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.releases import (
    CONTROLLER_ACTOR,
    InvalidTransition,
    NotReleasable,
    ReleaseConflict,
    ReleaseNotFound,
    SelfApproval,
)
from store import audit
from store import deployments as deployment_rows
from store import releases as release_rows
from store import versions as version_rows

FIRST_DEPLOY_REASON = "The model had no stable version, so there was no canary."


def _actions(store) -> list[tuple[str, str, str | None]]:
    return [
        (entry["action"], entry["actor"], entry["reason"])
        for entry in audit.list_entries(store.db, limit=1000)
        if entry["action"].startswith("release.")
    ]


def _deployed(setup, number: int = 1) -> None:
    """Make ``number`` the stable version through a first release."""
    release = setup.controller.request("m", number, "olga", "first")
    setup.controller.approve(release["id"], "anna", "fine")


def test_first_release_is_deployed_without_canary(releases):
    setup = releases()
    setup.add_version()

    release = setup.controller.request("m", 1, "olga", "first build")
    approved = setup.controller.approve(release["id"], "anna", "looks right")

    assert approved["state"] == "promoted"
    assert approved["canary_started_at"] is None
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert deployment["stable_version"] == 1
    assert deployment["canary_version"] is None
    assert setup.changed == ["m"]
    assert _actions(setup.store) == [
        ("release.request", "olga", "first build"),
        ("release.approval", "anna", "looks right"),
        ("release.approve", "anna", "looks right"),
        ("release.deploy", CONTROLLER_ACTOR, FIRST_DEPLOY_REASON),
    ]


def test_approved_release_starts_canary(releases):
    setup = releases("canary_weight = 0.25")
    setup.add_version()
    setup.add_version()
    _deployed(setup)

    release = setup.controller.request("m", 2, "olga", "retrained")
    canary = setup.controller.approve(release["id"], "anna", "go")

    assert canary["state"] == "canary"
    assert canary["canary_weight"] == 0.25
    assert canary["canary_started_at"] == setup.now[0]
    assert canary["state_changed_by"] == CONTROLLER_ACTOR
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (1, 2)
    assert deployment["canary_weight"] == 0.25
    assert deployment["release_id"] == release["id"]


def test_requester_cannot_approve_own_release(releases):
    setup = releases()
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "mine")

    with pytest.raises(SelfApproval) as raised:
        setup.controller.approve(release["id"], "olga", "trust me")

    assert str(raised.value) == (
        f"olga requested release {release['id']} and cannot also approve it; another "
        "approver must."
    )
    after = release_rows.get_release(setup.store.db, release["id"])
    assert after["state"] == "pending"
    assert after["approvals"] == []


def test_repeated_approval_changes_nothing(releases):
    setup = releases("approvals_required = 2")
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")

    first = setup.controller.approve(release["id"], "anna", "yes")
    entries = len(audit.list_entries(setup.store.db, limit=1000))
    second = setup.controller.approve(release["id"], "anna", "yes again")

    assert first["state"] == second["state"] == "pending"
    assert [a["actor"] for a in second["approvals"]] == ["anna"]
    assert second["approvals"][0]["reason"] == "yes"
    assert len(audit.list_entries(setup.store.db, limit=1000)) == entries


def test_two_approvals_needed_when_configured(releases):
    setup = releases("approvals_required = 2")
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")

    one = setup.controller.approve(release["id"], "anna", "yes")
    two = setup.controller.approve(release["id"], "bert", "yes")

    assert release["approvals_required"] == 2
    assert one["state"] == "pending"
    assert two["state"] == "promoted"
    assert [a["actor"] for a in two["approvals"]] == ["anna", "bert"]


def _race(actions) -> list[object]:
    """Run the callables at the same moment; return each result or exception."""
    barrier = threading.Barrier(len(actions))
    results: list[object] = [None] * len(actions)

    def run(index, action):
        barrier.wait()
        try:
            results[index] = action()
        except Exception as error:
            results[index] = error

    threads = [
        threading.Thread(target=run, args=(index, action))
        for index, action in enumerate(actions)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


@pytest.mark.parametrize("attempt", range(5))
def test_simultaneous_approvers_make_one_transition(releases, attempt):
    setup = releases()
    setup.add_version()
    setup.add_version()
    _deployed(setup)
    release = setup.controller.request("m", 2, "olga", "retrained")

    results = _race(
        [
            lambda: setup.controller.approve(release["id"], "anna", "yes"),
            lambda: setup.controller.approve(release["id"], "bert", "yes"),
        ]
    )

    succeeded = [result for result in results if isinstance(result, dict)]
    refused = [result for result in results if isinstance(result, InvalidTransition)]
    assert len(succeeded) == 1
    assert len(refused) == 1
    assert succeeded[0]["state"] == "canary"
    transitions = [
        action
        for action, _, _ in _actions(setup.store)
        if action in ("release.approve", "release.start_canary")
    ]
    assert transitions == [
        "release.approve",  # the first release
        "release.approve",
        "release.start_canary",
    ]
    after = release_rows.get_release(setup.store.db, release["id"])
    assert len(after["approvals"]) == 1


def test_simultaneous_second_approvals_make_one_transition(releases):
    setup = releases("approvals_required = 2")
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")
    setup.controller.approve(release["id"], "anna", "yes")

    results = _race(
        [
            lambda: setup.controller.approve(release["id"], "bert", "yes"),
            lambda: setup.controller.approve(release["id"], "carl", "yes"),
        ]
    )

    states = sorted(
        result["state"] if isinstance(result, dict) else type(result).__name__
        for result in results
    )
    assert states == ["InvalidTransition", "promoted"]
    deploys = [a for a, _, _ in _actions(setup.store) if a == "release.deploy"]
    assert deploys == ["release.deploy"]


def test_same_approver_twice_at_once(releases):
    setup = releases("approvals_required = 2")
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")

    results = _race(
        [lambda: setup.controller.approve(release["id"], "anna", "yes")] * 2
    )

    assert [result["state"] for result in results] == ["pending", "pending"]
    after = release_rows.get_release(setup.store.db, release["id"])
    assert [a["actor"] for a in after["approvals"]] == ["anna"]


def test_failed_gates_block_release(releases):
    setup = releases()
    setup.add_version(gates_pass=False)

    with pytest.raises(NotReleasable) as raised:
        setup.controller.request("m", 1, "olga", "ship it")

    assert str(raised.value) == (
        "Version 1 of 'm' cannot be released: Gates failed "
        "(metric-threshold(accuracy)); an admin can override them with a reason."
    )
    assert release_rows.list_releases(setup.store.db) == []


def test_overridden_gates_allow_release(releases):
    setup = releases()
    setup.add_version(gates_pass=False)
    with setup.store.write() as db:
        version_rows.override_gates(db, "m", 1, "root", "accepted risk")

    release = setup.controller.request("m", 1, "olga", "ship it")

    assert release["state"] == "pending"


def test_unknown_model_and_version(releases):
    setup = releases()
    setup.add_version()

    with pytest.raises(ReleaseNotFound) as model:
        setup.controller.request("nope", 1, "olga", "x")
    with pytest.raises(ReleaseNotFound) as version:
        setup.controller.request("m", 9, "olga", "x")
    with pytest.raises(ReleaseNotFound) as release:
        setup.controller.approve(42, "anna", "x")

    assert str(model.value) == "No model named 'nope'; see GET /api/v1/models."
    assert str(version.value) == (
        "Model 'm' has no version 9; see GET /api/v1/models/m/versions."
    )
    assert str(release.value) == "No release with id 42; see GET /api/v1/releases."


def test_one_open_release_per_model(releases):
    setup = releases()
    setup.add_version()
    setup.add_version()
    first = setup.controller.request("m", 1, "olga", "one")

    with pytest.raises(ReleaseConflict) as raised:
        setup.controller.request("m", 2, "olga", "two")

    assert str(raised.value) == (
        f"Model 'm' has release {first['id']} (version 1) pending; finish, reject or "
        "abort it before requesting another."
    )


def test_stable_version_cannot_be_released_again(releases):
    setup = releases()
    setup.add_version()
    _deployed(setup)

    with pytest.raises(ReleaseConflict) as raised:
        setup.controller.request("m", 1, "olga", "again")

    assert str(raised.value) == "Version 1 of 'm' is already stable."


def test_rejected_release_cannot_be_approved(releases):
    setup = releases()
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")
    rejected = setup.controller.reject(release["id"], "anna", "metrics look off")

    with pytest.raises(InvalidTransition):
        setup.controller.approve(release["id"], "bert", "I disagree")

    assert rejected["state"] == "rejected"
    assert rejected["state_reason"] == "metrics look off"
    assert rejected["approvals"][0]["decision"] == "reject"
    assert deployment_rows.get_deployment(setup.store.db, "m") is None


def test_promote_without_canary_is_refused(releases):
    setup = releases()
    setup.add_version()
    release = setup.controller.request("m", 1, "olga", "first")

    with pytest.raises(InvalidTransition) as raised:
        setup.controller.promote(release["id"], "anna", "skip the canary")

    assert (
        "is pending, so it cannot promote: promote needs a release that is canary"
        in (str(raised.value))
    )


def test_promote_makes_canary_stable(releases):
    setup = releases()
    setup.add_version()
    setup.add_version()
    _deployed(setup)
    release = setup.controller.request("m", 2, "olga", "retrained")
    setup.controller.approve(release["id"], "anna", "go")

    promoted = setup.controller.promote(release["id"], "anna", "canary is healthy")

    assert promoted["state"] == "promoted"
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (2, None)
    assert deployment["canary_weight"] == 0.0
    assert deployment_rows.rollback_target(setup.store.db, "m") == 1
    assert _actions(setup.store)[-1] == ("release.promote", "anna", "canary is healthy")


def test_abort_returns_traffic_to_stable(releases):
    setup = releases()
    setup.add_version()
    setup.add_version()
    _deployed(setup)
    release = setup.controller.request("m", 2, "olga", "retrained")
    setup.controller.approve(release["id"], "anna", "go")

    aborted = setup.controller.abort(release["id"], "anna", "latency doubled")

    assert aborted["state"] == "aborted"
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (1, None)
    history = deployment_rows.list_history(setup.store.db, "m")
    assert [row["action"] for row in history] == [
        "clear_canary",
        "start_canary",
        "promote",
    ]
    assert history[0]["reason"] == "latency doubled"


def test_abort_canary_for_drift_monitors(releases):
    setup = releases()
    setup.add_version()
    setup.add_version()
    _deployed(setup)
    assert setup.controller.abort_canary("m", "drift", "no canary yet") is None
    release = setup.controller.request("m", 2, "olga", "retrained")
    setup.controller.approve(release["id"], "anna", "go")

    aborted = setup.controller.abort_canary("m", "drift-monitor", "feature x1 drifted")

    assert aborted["id"] == release["id"]
    assert aborted["state"] == "aborted"
    assert aborted["state_changed_by"] == "drift-monitor"


def test_truncated_artifact_is_never_released(releases):
    setup = releases()
    version = setup.add_version()
    weights = Path(version["artifact_path"]) / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])

    with pytest.raises(NotReleasable) as raised:
        setup.controller.request("m", 1, "olga", "ship it")

    assert "The artifact failed verification: The artifact file" in str(raised.value)
    assert "was truncated or replaced" in str(raised.value)
    stored = version_rows.get_version(setup.store.db, "m", 1)
    assert stored["load_error"].startswith("The artifact failed verification")
    assert release_rows.list_releases(setup.store.db) == []
    entry = audit.list_entries(setup.store.db, limit=1000)[-1]
    assert entry["action"] == "version.load_failed"
    with pytest.raises(NotReleasable):
        setup.controller.request("m", 1, "olga", "try again")


def test_unloadable_version_aborted_on_approval(releases):
    setup = releases()
    setup.add_version()
    setup.add_version()
    _deployed(setup)
    release = setup.controller.request("m", 2, "olga", "retrained")
    with setup.store.write() as db:
        deployment_rows.mark_load_error(db, "m", 2, "torch said no")

    aborted = setup.controller.approve(release["id"], "anna", "go")

    assert aborted["state"] == "aborted"
    assert aborted["state_reason"] == "It cannot serve: torch said no"
    deployment = deployment_rows.get_deployment(setup.store.db, "m")
    assert (deployment["stable_version"], deployment["canary_version"]) == (1, None)
