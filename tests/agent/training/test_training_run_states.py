"""The run state machine: every allowed transition works, every other one raises."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from store import Store
from store import runs as run_rows
from store.runs import TRANSITIONS, InvalidTransitionError, RunState

ALLOWED = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("queued", "failed"),
    ("queued", "interrupted"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "timed_out"),
    ("running", "interrupted"),
}
ALL_PAIRS = list(itertools.product([s.value for s in RunState], repeat=2))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "store.db")
    with store.write() as db:
        db.conn.execute("INSERT INTO models (name, created_at) VALUES ('m', 0)")
    yield store
    store.close()


def _run_in_state(store: Store, state: str) -> int:
    with store.write() as db:
        run_id = run_rows.create_run(
            db,
            model="m",
            job=None,
            trigger="manual",
            requested_by="t",
            budget_seconds=60,
            spec={},
        )
        db.conn.execute("UPDATE runs SET state = ? WHERE id = ?", (state, run_id))
    return run_id


def test_table_matches_documented_transitions():
    table = {
        (source.value, target.value)
        for source, targets in TRANSITIONS.items()
        for target in targets
    }
    assert table == ALLOWED


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_allowed_transition_updates_row(store: Store, source: str, target: str):
    run_id = _run_in_state(store, source)
    with store.write() as db:
        run = run_rows.transition(db, run_id, target)
    assert run["state"] == target
    final = target not in ("queued", "running")
    assert (run["finished_at"] is not None) == final


@pytest.mark.parametrize(("source", "target"), sorted(set(ALL_PAIRS) - ALLOWED))
def test_illegal_transition_raises(store: Store, source: str, target: str):
    run_id = _run_in_state(store, source)
    with pytest.raises(InvalidTransitionError) as caught, store.write() as db:
        run_rows.transition(db, run_id, target)
    assert caught.value.current == source
    assert caught.value.target == target
    assert f"cannot go from {source} to {target}" in str(caught.value)
    assert run_rows.get_run(store.db, run_id)["state"] == source


def test_transition_from_stale_state_changes_nothing(store: Store):
    run_id = _run_in_state(store, "running")
    with store.write() as db:
        run_rows.transition(db, run_id, "cancelled")
    with pytest.raises(InvalidTransitionError), store.write() as db:
        run_rows.transition(db, run_id, "succeeded")
    assert run_rows.get_run(store.db, run_id)["state"] == "cancelled"


def test_unknown_state_is_rejected(store: Store):
    run_id = _run_in_state(store, "queued")
    with pytest.raises(ValueError), store.write() as db:
        run_rows.transition(db, run_id, "paused")


def test_update_run_refuses_state(store: Store):
    run_id = _run_in_state(store, "running")
    with pytest.raises(ValueError, match="transition"), store.write() as db:
        run_rows.update_run(db, run_id, state="succeeded")
