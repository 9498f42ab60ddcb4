"""Rollback to the last known-good version, through ReleaseController."""

from __future__ import annotations

import pytest

from agent.releases import ReleaseConflict, ReleaseNotFound
from store import Store, audit
from store import deployments as deployment_rows
from store import releases as release_rows


def _release(setup, number: int, promote: bool = True) -> dict:
    release = setup.controller.request("m", number, "olga", f"version {number}")
    release = setup.controller.approve(release["id"], "anna", "go")
    if promote and release["state"] == "canary":
        release = setup.controller.promote(release["id"], "anna", "healthy")
    return release


def _stable(store) -> tuple[int | None, int | None]:
    deployment = deployment_rows.get_deployment(store.db, "m")
    return deployment["stable_version"], deployment["canary_version"]


def test_rollback_returns_to_previous_stable(releases):
    setup = releases()
    for _ in range(2):
        setup.add_version()
    first, second = _release(setup, 1), _release(setup, 2)

    change = setup.controller.rollback("m", "omar", "error rate doubled")

    assert change["stable_version"] == 1
    assert change["action"] == "roll_back"
    assert change["actor"] == "omar"
    assert _stable(setup.store) == (1, None)
    assert (
        release_rows.get_release(setup.store.db, second["id"])["state"] == "rolled_back"
    )
    assert release_rows.get_release(setup.store.db, first["id"])["state"] == "promoted"
    entries = audit.list_entries(setup.store.db, limit=1000)
    entry = next(e for e in entries if e["action"] == "deployment.rollback")
    assert entry["reason"] == "error rate doubled"
    assert entry["before"] == {
        "stable_version": 2,
        "canary_version": None,
        "canary_weight": 0.0,
    }
    assert entry["after"] == {
        "stable_version": 1,
        "canary_version": None,
        "canary_weight": 0.0,
    }


def test_rollbacks_walk_back_promotions(releases):
    setup = releases()
    for _ in range(3):
        setup.add_version()
    for number in (1, 2, 3):
        _release(setup, number)

    setup.controller.rollback("m", "omar", "v3 is bad")
    assert _stable(setup.store) == (2, None)
    assert deployment_rows.rollback_target(setup.store.db, "m") == 1
    setup.controller.rollback("m", "omar", "v2 is bad too")
    assert _stable(setup.store) == (1, None)

    with pytest.raises(ReleaseConflict) as raised:
        setup.controller.rollback("m", "omar", "again")
    assert str(raised.value) == (
        "Model 'm' has no earlier stable version to roll back to: version 1 is the "
        "first, or every earlier one was rolled back. To end a canary, abort its "
        "release instead."
    )


def test_rollback_never_returns_to_rolled_back_version(releases):
    setup = releases()
    for _ in range(3):
        setup.add_version()
    _release(setup, 1)
    _release(setup, 2)
    setup.controller.rollback("m", "omar", "v2 is bad")
    _release(setup, 3)

    setup.controller.rollback("m", "omar", "v3 is bad")

    assert _stable(setup.store) == (1, None)


def test_rollback_clears_canary(releases):
    setup = releases()
    for _ in range(3):
        setup.add_version()
    _release(setup, 1)
    promoted = _release(setup, 2)
    canary = _release(setup, 3, promote=False)
    assert _stable(setup.store) == (2, 3)

    setup.controller.rollback("m", "omar", "everything is on fire")

    assert _stable(setup.store) == (1, None)
    assert release_rows.get_release(setup.store.db, canary["id"])["state"] == "aborted"
    assert (
        release_rows.get_release(setup.store.db, promoted["id"])["state"]
        == "rolled_back"
    )
    assert deployment_rows.get_deployment(setup.store.db, "m")["canary_weight"] == 0.0


def test_rollback_needs_an_earlier_version(releases):
    setup = releases()
    setup.add_version()

    with pytest.raises(ReleaseConflict) as nothing:
        setup.controller.rollback("m", "omar", "why not")
    _release(setup, 1)
    with pytest.raises(ReleaseConflict) as first:
        setup.controller.rollback("m", "omar", "why not")
    with pytest.raises(ReleaseNotFound) as unknown:
        setup.controller.rollback("other", "omar", "why not")

    assert str(nothing.value) == "Model 'm' serves nothing, so there is no rollback."
    assert "version 1 is the first" in str(first.value)
    assert str(unknown.value) == "No model named 'other'; see GET /api/v1/models."
    assert _stable(setup.store) == (1, None)


def test_rollback_refuses_broken_target(releases):
    setup = releases()
    for _ in range(2):
        setup.add_version()
    _release(setup, 1)
    _release(setup, 2)
    with setup.store.write() as db:
        deployment_rows.mark_load_error(db, "m", 1, "disk ate it")

    with pytest.raises(ReleaseConflict) as raised:
        setup.controller.rollback("m", "omar", "v2 is bad")

    assert str(raised.value) == (
        "The last known-good version 1 of 'm' cannot serve: disk ate it"
    )
    assert _stable(setup.store) == (2, None)


def test_rollback_survives_reopening_store(releases):
    setup = releases()
    for _ in range(2):
        setup.add_version()
    _release(setup, 1)
    _release(setup, 2)
    setup.controller.rollback("m", "omar", "v2 is bad")

    reopened = Store(setup.config.store_path)
    try:
        deployment = deployment_rows.get_deployment(reopened.db, "m")
        assert (deployment["stable_version"], deployment["canary_version"]) == (1, None)
        assert deployment_rows.rollback_target(reopened.db, "m") is None
        assert audit.verify_chain(reopened.db).ok
    finally:
        reopened.close()


def test_deployment_row_without_history_is_imported(releases):
    setup = releases()
    for _ in range(2):
        setup.add_version()
    with setup.store.write() as db:
        db.conn.execute(
            "INSERT INTO deployments (model, stable_version, updated_at) VALUES "
            "('m', 1, 0)"
        )
    _release(setup, 2)

    setup.controller.rollback("m", "omar", "v2 is bad")

    assert _stable(setup.store) == (1, None)
    actions = [
        row["action"] for row in deployment_rows.list_history(setup.store.db, "m")
    ]
    assert actions == ["roll_back", "promote", "start_canary", "import"]
