"""Training runs and the one state machine every run follows.

::

    queued ──> running ──> succeeded
      │           ├──────> failed
      │           ├──────> cancelled
      │           ├──────> timed_out
      │           └──────> interrupted
      ├──> cancelled     (cancelled before it started)
      ├──> failed        (it could not be started)
      └──> interrupted   (the agent stopped before it started)

Every state change goes through ``transition()``, which checks the table
and updates the row only if it is still in the state the caller read, so
two writers racing on one run cause exactly one transition.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import sqlite_utils

from store.errors import NotFoundError, StoreError


class RunState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"


TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset(
        {RunState.RUNNING, RunState.CANCELLED, RunState.FAILED, RunState.INTERRUPTED}
    ),
    RunState.RUNNING: frozenset(
        {
            RunState.SUCCEEDED,
            RunState.FAILED,
            RunState.CANCELLED,
            RunState.TIMED_OUT,
            RunState.INTERRUPTED,
        }
    ),
    RunState.SUCCEEDED: frozenset(),
    RunState.FAILED: frozenset(),
    RunState.CANCELLED: frozenset(),
    RunState.TIMED_OUT: frozenset(),
    RunState.INTERRUPTED: frozenset(),
}

ACTIVE_STATES = (RunState.QUEUED, RunState.RUNNING)
FINAL_STATES = tuple(state for state, targets in TRANSITIONS.items() if not targets)

_JSON_COLUMNS = ("progress_json", "metrics_json", "spec_json")


class InvalidTransitionError(StoreError):
    """A run state change that the state machine does not allow."""

    def __init__(self, run_id: int, current: str, target: str) -> None:
        allowed = sorted(TRANSITIONS[RunState(current)])
        allowed_text = ", ".join(allowed) if allowed else "none, because it is final"
        super().__init__(
            f"Run {run_id} cannot go from {current} to {target}; from {current} "
            f"it may go to: {allowed_text}."
        )
        self.run_id = run_id
        self.current = current
        self.target = target


def check_transition(run_id: int, current: str, target: str) -> None:
    """Raise InvalidTransitionError unless ``current -> target`` is in the table."""
    if RunState(target) not in TRANSITIONS[RunState(current)]:
        raise InvalidTransitionError(run_id, current, target)


def create_run(
    db: sqlite_utils.Database,
    *,
    model: str,
    job: str | None,
    trigger: str,
    requested_by: str | None,
    budget_seconds: float,
    spec: dict[str, Any],
) -> int:
    """Insert a queued run inside the caller's write transaction; return its id."""
    cursor = db.conn.execute(
        "INSERT INTO runs (job, model, state, trigger, requested_by, created_at, "
        "budget_seconds, spec_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            job,
            model,
            RunState.QUEUED.value,
            trigger,
            requested_by,
            time.time(),
            budget_seconds,
            json.dumps(spec, sort_keys=True),
        ),
    )
    return cursor.lastrowid


def transition(
    db: sqlite_utils.Database, run_id: int, target: RunState | str, **fields: Any
) -> dict[str, Any]:
    """Move a run to ``target`` and set ``fields``, inside a write transaction.

    ``finished_at`` is set when the target state is final and the caller
    did not give it. Raises NotFoundError for an unknown run and
    InvalidTransitionError for a change the state machine forbids.

    Returns:
        The run row after the change.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("transition() must run inside Store.write().")
    target = RunState(target)
    current = _current_state(db, run_id)
    check_transition(run_id, current, target)
    if target in FINAL_STATES:
        fields.setdefault("finished_at", time.time())
    assignments = ", ".join(f"{column} = ?" for column in ["state", *fields])
    values = [
        target.value,
        *(_encode(column, value) for column, value in fields.items()),
    ]
    cursor = db.conn.execute(
        f"UPDATE runs SET {assignments} WHERE id = ? AND state = ?",
        [*values, run_id, current],
    )
    if cursor.rowcount != 1:
        raise InvalidTransitionError(run_id, _current_state(db, run_id), target)
    return get_run(db, run_id)


def update_run(db: sqlite_utils.Database, run_id: int, **fields: Any) -> None:
    """Set columns other than ``state`` (progress, metrics, data hash)."""
    if "state" in fields:
        raise ValueError("Change a run's state with transition(), not update_run().")
    if not fields:
        return
    assignments = ", ".join(f"{column} = ?" for column in fields)
    values = [_encode(column, value) for column, value in fields.items()]
    db.conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*values, run_id])


def request_cancel(db: sqlite_utils.Database, run_id: int, actor: str) -> bool:
    """Record a cancel request on a running run; False if one was recorded already."""
    cursor = db.conn.execute(
        "UPDATE runs SET cancel_requested_at = ?, cancel_requested_by = ? "
        "WHERE id = ? AND state = ? AND cancel_requested_at IS NULL",
        (time.time(), actor, run_id, RunState.RUNNING.value),
    )
    return cursor.rowcount == 1


def get_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any]:
    """Return one run with its JSON columns decoded; raise NotFoundError."""
    rows = list(db.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise NotFoundError(f"No run with id {run_id}.")
    return decode_run(rows[0])


def find_run(db: sqlite_utils.Database, run_id: int) -> dict[str, Any] | None:
    """Return one run, or None when there is no run with that id."""
    try:
        return get_run(db, run_id)
    except NotFoundError:
        return None


def list_runs(
    db: sqlite_utils.Database,
    *,
    model: str | None = None,
    states: tuple[str, ...] | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return runs newest first, filtered by model and state, below an id cursor."""
    clauses, params = [], []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if states:
        clauses.append(f"state IN ({', '.join('?' for _ in states)})")
        params.extend(states)
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.query(
        f"SELECT * FROM runs {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [decode_run(row) for row in rows]


def active_runs(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Return queued and running runs, oldest first."""
    rows = db.query(
        "SELECT * FROM runs WHERE state IN (?, ?) ORDER BY id",
        [state.value for state in ACTIVE_STATES],
    )
    return [decode_run(row) for row in rows]


def active_run_of_model(db: sqlite_utils.Database, model: str) -> dict[str, Any] | None:
    """Return the model's queued or running run, if it has one."""
    rows = list(
        db.query(
            "SELECT * FROM runs WHERE model = ? AND state IN (?, ?) ORDER BY id LIMIT "
            "1",
            [model, *(state.value for state in ACTIVE_STATES)],
        )
    )
    return decode_run(rows[0]) if rows else None


def decode_run(row: dict[str, Any]) -> dict[str, Any]:
    """Turn a raw row into API shape: JSON columns parsed, ``gpus`` as a list."""
    run = dict(row)
    for column in _JSON_COLUMNS:
        if column in run:
            run[column.removesuffix("_json")] = json.loads(run.pop(column) or "null")
    run["gpus"] = json.loads(run["gpus"]) if run.get("gpus") else []
    return run


def _current_state(db: sqlite_utils.Database, run_id: int) -> str:
    row = db.conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"No run with id {run_id}.")
    return row[0]


def _encode(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS or column == "gpus":
        return None if value is None else json.dumps(value, sort_keys=True)
    return value
