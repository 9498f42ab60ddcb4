"""Releases, their approvals, and the one state machine every release follows.

::

    pending   --approve-->       approved   (once enough approvers agreed)
    pending   --reject-->        rejected
    approved  --start_canary-->  canary
    approved  --deploy-->        promoted   (the model has no stable version)
    approved  --abort-->         aborted
    canary    --promote-->       promoted
    canary    --abort-->         aborted
    promoted  --roll_back-->     rolled_back

``deploy`` promotes an approved release without a canary; the release
controller uses it only when the model has no stable version to compare
a canary with. Every state change goes through ``transition()``, which
checks the table and updates the row only if it is still in the state
the caller read, so two writers racing on one release cause exactly one
transition.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any

import sqlite_utils

from store.errors import NotFoundError, StoreError


class ReleaseState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANARY = "canary"
    PROMOTED = "promoted"
    ABORTED = "aborted"
    ROLLED_BACK = "rolled_back"


class ReleaseAction(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    START_CANARY = "start_canary"
    DEPLOY = "deploy"
    PROMOTE = "promote"
    ABORT = "abort"
    ROLL_BACK = "roll_back"


TRANSITIONS: dict[ReleaseState, dict[ReleaseAction, ReleaseState]] = {
    ReleaseState.PENDING: {
        ReleaseAction.APPROVE: ReleaseState.APPROVED,
        ReleaseAction.REJECT: ReleaseState.REJECTED,
    },
    ReleaseState.APPROVED: {
        ReleaseAction.START_CANARY: ReleaseState.CANARY,
        ReleaseAction.DEPLOY: ReleaseState.PROMOTED,
        ReleaseAction.ABORT: ReleaseState.ABORTED,
    },
    ReleaseState.CANARY: {
        ReleaseAction.PROMOTE: ReleaseState.PROMOTED,
        ReleaseAction.ABORT: ReleaseState.ABORTED,
    },
    ReleaseState.PROMOTED: {ReleaseAction.ROLL_BACK: ReleaseState.ROLLED_BACK},
    ReleaseState.REJECTED: {},
    ReleaseState.ABORTED: {},
    ReleaseState.ROLLED_BACK: {},
}

# A model has at most one release in these states at a time.
OPEN_STATES = (ReleaseState.PENDING, ReleaseState.APPROVED, ReleaseState.CANARY)
FINAL_STATES = tuple(state for state, actions in TRANSITIONS.items() if not actions)


class InvalidReleaseTransition(StoreError):
    """A release action that the state machine does not allow in the current state."""

    def __init__(self, release_id: int, current: str, action: str) -> None:
        allowed = sorted(TRANSITIONS[ReleaseState(current)])
        allowed_text = ", ".join(allowed) if allowed else "nothing, because it is final"
        needed = sorted(
            state for state, actions in TRANSITIONS.items() if action in actions
        )
        super().__init__(
            f"Release {release_id} is {current}, so it cannot {action}: {action} "
            f"needs a release that is {' or '.join(needed)}. From {current} the "
            f"allowed actions are: {allowed_text}."
        )
        self.release_id = release_id
        self.current = current
        self.action = action


def target_state(release_id: int, current: str, action: str) -> ReleaseState:
    """Return the state ``action`` leads to; raise InvalidReleaseTransition."""
    target = TRANSITIONS[ReleaseState(current)].get(ReleaseAction(action))
    if target is None:
        raise InvalidReleaseTransition(release_id, current, action)
    return target


def insert_release(
    db: sqlite_utils.Database,
    *,
    model: str,
    version: int,
    requested_by: str,
    reason: str,
    approvals_required: int,
    canary_weight: float,
) -> dict[str, Any]:
    """Insert a pending release inside the caller's write transaction; return it."""
    _require_transaction(db, "insert_release")
    now = time.time()
    cursor = db.conn.execute(
        "INSERT INTO releases (model, version, state, requested_by, reason, "
        "approvals_required, canary_weight, created_at, updated_at, "
        "state_changed_by, state_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            model,
            version,
            ReleaseState.PENDING.value,
            requested_by,
            reason,
            approvals_required,
            canary_weight,
            now,
            now,
            requested_by,
            reason,
        ),
    )
    return get_release(db, cursor.lastrowid)


def transition(
    db: sqlite_utils.Database,
    release_id: int,
    action: ReleaseAction | str,
    *,
    actor: str,
    reason: str | None,
    **fields: Any,
) -> dict[str, Any]:
    """Apply ``action`` to a release and set ``fields``, inside a write transaction.

    Raises NotFoundError for an unknown release and InvalidReleaseTransition
    for an action the state machine forbids in the current state.

    Returns:
        The release after the change.
    """
    _require_transaction(db, "transition")
    current = get_release(db, release_id)["state"]
    target = target_state(release_id, current, action)
    fields.update(
        state=target.value,
        updated_at=time.time(),
        state_changed_by=actor,
        state_reason=reason,
    )
    assignments = ", ".join(f"{column} = ?" for column in fields)
    values = [_encode(column, value) for column, value in fields.items()]
    cursor = db.conn.execute(
        f"UPDATE releases SET {assignments} WHERE id = ? AND state = ?",
        [*values, release_id, current],
    )
    if cursor.rowcount != 1:
        raise InvalidReleaseTransition(
            release_id, get_release(db, release_id)["state"], action
        )
    return get_release(db, release_id)


def set_verdict(
    db: sqlite_utils.Database, release_id: int, verdict: dict[str, Any]
) -> None:
    """Store the latest canary analysis of a release; its state does not change."""
    db.conn.execute(
        "UPDATE releases SET verdict_json = ?, updated_at = ? WHERE id = ?",
        (_encode("verdict_json", verdict), time.time(), release_id),
    )


def add_approval(
    db: sqlite_utils.Database,
    release_id: int,
    actor: str,
    decision: str,
    reason: str | None,
) -> bool:
    """Record one person's decision; return False if they had decided already.

    ``approvals`` is unique on (release, actor), so a repeated decision
    changes nothing, whichever transaction commits first.
    """
    cursor = db.conn.execute(
        "INSERT INTO approvals (release_id, actor, decision, reason, ts) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (release_id, actor) DO NOTHING",
        (release_id, actor, decision, reason, time.time()),
    )
    return cursor.rowcount == 1


def find_decision(
    db: sqlite_utils.Database, release_id: int, actor: str
) -> dict[str, Any] | None:
    """Return the decision ``actor`` recorded on a release, if any."""
    rows = list(
        db.query(
            "SELECT * FROM approvals WHERE release_id = ? AND actor = ?",
            [release_id, actor],
        )
    )
    return rows[0] if rows else None


def count_approvals(db: sqlite_utils.Database, release_id: int) -> int:
    row = db.conn.execute(
        "SELECT COUNT(*) FROM approvals WHERE release_id = ? AND decision = 'approve'",
        (release_id,),
    ).fetchone()
    return row[0]


def list_approvals(db: sqlite_utils.Database, release_id: int) -> list[dict[str, Any]]:
    """Return a release's approvals and rejections, oldest first."""
    return list(
        db.query(
            "SELECT actor, decision, reason, ts FROM approvals WHERE release_id = ? "
            "ORDER BY id",
            [release_id],
        )
    )


def get_release(db: sqlite_utils.Database, release_id: int) -> dict[str, Any]:
    """Return one release with its approvals; raise NotFoundError."""
    rows = list(db.query("SELECT * FROM releases WHERE id = ?", [release_id]))
    if not rows:
        raise NotFoundError(f"No release with id {release_id}.")
    return _decode(db, rows[0])


def find_release(db: sqlite_utils.Database, release_id: int) -> dict[str, Any] | None:
    try:
        return get_release(db, release_id)
    except NotFoundError:
        return None


def open_release(db: sqlite_utils.Database, model: str) -> dict[str, Any] | None:
    """Return the model's pending, approved or in-canary release, if it has one."""
    rows = list(
        db.query(
            f"SELECT * FROM releases WHERE model = ? AND state IN "
            f"({', '.join('?' for _ in OPEN_STATES)}) ORDER BY id LIMIT 1",
            [model, *OPEN_STATES],
        )
    )
    return _decode(db, rows[0]) if rows else None


def releases_in_state(
    db: sqlite_utils.Database, state: ReleaseState | str
) -> list[dict[str, Any]]:
    """Return every release in ``state``, oldest first."""
    rows = db.query(
        "SELECT * FROM releases WHERE state = ? ORDER BY id", [ReleaseState(state)]
    )
    return [_decode(db, row) for row in rows]


def promoted_release(
    db: sqlite_utils.Database, model: str, version: int
) -> dict[str, Any] | None:
    """Return the newest promoted release of ``version``, if it has one."""
    rows = list(
        db.query(
            "SELECT * FROM releases WHERE model = ? AND version = ? AND state = ? "
            "ORDER BY id DESC LIMIT 1",
            [model, version, ReleaseState.PROMOTED.value],
        )
    )
    return _decode(db, rows[0]) if rows else None


def list_releases(
    db: sqlite_utils.Database,
    *,
    model: str | None = None,
    state: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return releases newest first, filtered by model and state, below an id cursor."""
    clauses, params = [], []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if state is not None:
        clauses.append("state = ?")
        params.append(state)
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.query(
        f"SELECT * FROM releases {where} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [_decode(db, row) for row in rows]


def _decode(db: sqlite_utils.Database, row: dict[str, Any]) -> dict[str, Any]:
    release = dict(row)
    release["verdict"] = json.loads(release.pop("verdict_json") or "null")
    release["approvals"] = list_approvals(db, release["id"])
    return release


def _encode(column: str, value: Any) -> Any:
    if column.endswith("_json") and value is not None:
        # allow_nan=False: a NaN statistic would make the API emit invalid JSON.
        return json.dumps(value, sort_keys=True, allow_nan=False)
    return value


def _require_transaction(db: sqlite_utils.Database, name: str) -> None:
    if not db.conn.in_transaction:
        raise RuntimeError(f"{name}() must run inside Store.write().")
