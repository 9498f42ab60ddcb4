"""Deployments: the versions each model serves now, and their history.

``deployments`` has one row per model: the stable version, an optional
canary version and the canary's share of traffic. The serving worker
reads this row, so a committed change is what production serves next.

Every change also appends a full copy of the new state to
``deployment_history``. Each history row points, through
``rollback_to_id``, at the row whose stable version a rollback returns
to, the model's *last known-good version*:

- a change that keeps the stable version (a canary starts or ends)
  copies the pointer of the row before it;
- a promotion points at the row before it, whose stable version served
  until this promotion;
- a rollback returns to the row it points at and takes over that row's
  pointer, so a second rollback goes one more promotion back and never
  returns to a version that was rolled back.
"""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

from store.errors import StoreError

IMPORT_ACTOR = "agent"


class NoRollbackTarget(StoreError):
    """A rollback of a model that has no earlier stable version to return to."""


def get_deployment(db: sqlite_utils.Database, model: str) -> dict[str, Any] | None:
    """Return the model's deployment row, or None when it serves nothing."""
    rows = list(db.query("SELECT * FROM deployments WHERE model = ?", [model]))
    return rows[0] if rows else None


def list_deployments(
    db: sqlite_utils.Database, *, after_model: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return deployment rows by model name, after a name cursor."""
    where, params = "", []
    if after_model is not None:
        where, params = "WHERE model > ?", [after_model]
    return list(
        db.query(
            f"SELECT * FROM deployments {where} ORDER BY model LIMIT ?",
            [*params, limit],
        )
    )


def list_history(
    db: sqlite_utils.Database,
    model: str,
    *,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return a model's deployment changes, newest first."""
    clauses, params = ["model = ?"], [model]
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    return list(
        db.query(
            f"SELECT * FROM deployment_history WHERE {' AND '.join(clauses)} "
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
    )


def rollback_target(db: sqlite_utils.Database, model: str) -> int | None:
    """Return the last known-good version a rollback would serve, if any."""
    current = _latest_history(db, model)
    if current is None or current["rollback_to_id"] is None:
        return None
    return _history_row(db, current["rollback_to_id"])["stable_version"]


def start_canary(
    db: sqlite_utils.Database,
    model: str,
    version: int,
    weight: float,
    *,
    release_id: int,
    actor: str,
    reason: str | None,
) -> dict[str, Any]:
    """Serve ``version`` to ``weight`` of the traffic beside the stable version."""
    current = _current(db, model)
    if current is None or current["stable_version"] is None:
        raise StoreError(
            f"Model {model!r} has no stable version, so a canary has nothing to "
            "share traffic with."
        )
    return _append(
        db,
        model,
        stable_version=current["stable_version"],
        canary_version=version,
        canary_weight=weight,
        release_id=release_id,
        action="start_canary",
        actor=actor,
        reason=reason,
        rollback_to_id=current["rollback_to_id"],
    )


def clear_canary(
    db: sqlite_utils.Database, model: str, *, actor: str, reason: str | None
) -> dict[str, Any] | None:
    """Send all traffic back to the stable version; None if no canary ran."""
    current = _current(db, model)
    if current is None or current["canary_version"] is None:
        return None
    return _append(
        db,
        model,
        stable_version=current["stable_version"],
        canary_version=None,
        canary_weight=0.0,
        release_id=None,
        action="clear_canary",
        actor=actor,
        reason=reason,
        rollback_to_id=current["rollback_to_id"],
    )


def promote(
    db: sqlite_utils.Database,
    model: str,
    version: int,
    *,
    release_id: int | None,
    actor: str,
    reason: str | None,
) -> dict[str, Any]:
    """Make ``version`` the stable version and end any canary."""
    current = _current(db, model)
    previous_id = None
    if current is not None and current["stable_version"] is not None:
        previous_id = current["id"]
    return _append(
        db,
        model,
        stable_version=version,
        canary_version=None,
        canary_weight=0.0,
        release_id=release_id,
        action="promote",
        actor=actor,
        reason=reason,
        rollback_to_id=previous_id,
    )


def roll_back(
    db: sqlite_utils.Database, model: str, *, actor: str, reason: str | None
) -> dict[str, Any]:
    """Return to the last known-good version and end any canary.

    Raises:
        NoRollbackTarget: the model never had an earlier stable version.
    """
    current = _current(db, model)
    if current is None or current["rollback_to_id"] is None:
        raise NoRollbackTarget(
            f"Model {model!r} has no earlier stable version to roll back to: "
            f"{_describe(current)}."
        )
    target = _history_row(db, current["rollback_to_id"])
    return _append(
        db,
        model,
        stable_version=target["stable_version"],
        canary_version=None,
        canary_weight=0.0,
        release_id=None,
        action="roll_back",
        actor=actor,
        reason=reason,
        rollback_to_id=target["rollback_to_id"],
    )


def mark_load_error(
    db: sqlite_utils.Database, model: str, number: int, message: str
) -> None:
    """Record why a version cannot be served (``versions.load_error``).

    The release controller refuses versions marked this way, and the
    serving worker never loads them again.
    """
    db.conn.execute(
        "UPDATE versions SET load_error = ? WHERE model = ? AND number = ?",
        (message, model, number),
    )


def _current(db: sqlite_utils.Database, model: str) -> dict[str, Any] | None:
    """Return the newest history row, recording a deployment made without one.

    A deployment row written directly (by a test, or a tool) gets a history
    row here, so that later changes have a state to point back at.
    """
    latest = _latest_history(db, model)
    if latest is not None:
        return latest
    deployment = get_deployment(db, model)
    if deployment is None:
        return None
    return _append(
        db,
        model,
        stable_version=deployment["stable_version"],
        canary_version=deployment["canary_version"],
        canary_weight=deployment["canary_weight"],
        release_id=deployment["release_id"],
        action="import",
        actor=IMPORT_ACTOR,
        reason="The deployment row existed without a history.",
        rollback_to_id=None,
    )


def _append(db: sqlite_utils.Database, model: str, **state: Any) -> dict[str, Any]:
    if not db.conn.in_transaction:
        raise RuntimeError("Deployment changes must run inside Store.write().")
    now = time.time()
    cursor = db.conn.execute(
        "INSERT INTO deployment_history (model, stable_version, canary_version, "
        "canary_weight, release_id, action, actor, reason, rollback_to_id, ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            model,
            state["stable_version"],
            state["canary_version"],
            state["canary_weight"],
            state["release_id"],
            state["action"],
            state["actor"],
            state["reason"],
            state["rollback_to_id"],
            now,
        ),
    )
    db.conn.execute(
        "INSERT INTO deployments (model, stable_version, canary_version, "
        "canary_weight, release_id, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (model) DO UPDATE SET stable_version = excluded.stable_version, "
        "canary_version = excluded.canary_version, "
        "canary_weight = excluded.canary_weight, release_id = excluded.release_id, "
        "updated_at = excluded.updated_at",
        (
            model,
            state["stable_version"],
            state["canary_version"],
            state["canary_weight"],
            state["release_id"],
            now,
        ),
    )
    return _history_row(db, cursor.lastrowid)


def _latest_history(db: sqlite_utils.Database, model: str) -> dict[str, Any] | None:
    rows = list(
        db.query(
            "SELECT * FROM deployment_history WHERE model = ? ORDER BY id DESC LIMIT 1",
            [model],
        )
    )
    return rows[0] if rows else None


def _history_row(db: sqlite_utils.Database, history_id: int) -> dict[str, Any]:
    return next(
        iter(db.query("SELECT * FROM deployment_history WHERE id = ?", [history_id]))
    )


def _describe(current: dict[str, Any] | None) -> str:
    if current is None or current["stable_version"] is None:
        return "it serves nothing yet"
    return (
        f"version {current['stable_version']} is its first stable version, or "
        "every earlier one was rolled back already"
    )
