"""The store's monitors and drift_events tables, as the drift service uses them."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlite_utils

ROLES = ("stable", "canary")


def save_monitor(
    db: sqlite_utils.Database,
    *,
    model: str,
    role: str,
    version: int,
    signal: str,
    detector: str,
    params: dict[str, Any],
    state: dict[str, Any],
) -> None:
    """Insert or replace the row of one monitor, inside the caller's transaction."""
    db.conn.execute(
        "INSERT INTO monitors (model, role, version, signal, detector, params_json, "
        "state_json, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (model, role, signal) DO UPDATE SET version = excluded.version, "
        "detector = excluded.detector, params_json = excluded.params_json, "
        "state_json = excluded.state_json, updated_at = excluded.updated_at",
        (
            model,
            role,
            version,
            signal,
            detector,
            _dumps(params),
            _dumps(state),
            time.time(),
        ),
    )


def delete_monitors(db: sqlite_utils.Database, model: str, role: str) -> None:
    """Remove a role's monitors, e.g. when its canary version ends."""
    db.conn.execute("DELETE FROM monitors WHERE model = ? AND role = ?", (model, role))


def load_monitors(
    db: sqlite_utils.Database, model: str, role: str
) -> dict[str, dict[str, Any]]:
    """Return one role's monitor rows by signal, ``params`` and ``state`` decoded."""
    rows = db.query(
        "SELECT * FROM monitors WHERE model = ? AND role = ?", [model, role]
    )
    return {row["signal"]: _decode_monitor(row) for row in rows}


def list_monitors(
    db: sqlite_utils.Database, model: str | None = None
) -> list[dict[str, Any]]:
    """Return monitor rows ordered by model, role and id, with JSON decoded."""
    where, params = ("WHERE model = ?", [model]) if model else ("", [])
    rows = db.query(f"SELECT * FROM monitors {where} ORDER BY model, role, id", params)
    return [_decode_monitor(row) for row in rows]


def insert_event(
    db: sqlite_utils.Database,
    *,
    model: str,
    version: int,
    role: str,
    signal: str,
    detector: str,
    sample_index: int,
    ts: float,
    stats: dict[str, Any],
) -> int:
    """Insert one drift event inside the caller's transaction; return its id."""
    cursor = db.conn.execute(
        "INSERT INTO drift_events (model, version, role, signal, detector, "
        "sample_index, ts, stats_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (model, version, role, signal, detector, sample_index, ts, _dumps(stats)),
    )
    return cursor.lastrowid


def link_alert(db: sqlite_utils.Database, event_id: int, alert_id: int) -> None:
    db.conn.execute(
        "UPDATE drift_events SET alert_id = ? WHERE id = ?", (alert_id, event_id)
    )


def list_events(
    db: sqlite_utils.Database,
    *,
    model: str | None = None,
    since: float | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return drift events oldest first, filtered by model, time and id cursor."""
    clauses, params = [], []
    if model is not None:
        clauses.append("model = ?")
        params.append(model)
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if after_id is not None:
        clauses.append("id > ?")
        params.append(after_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.query(
        f"SELECT * FROM drift_events {where} ORDER BY id LIMIT ?", [*params, limit]
    )
    return [decode_event(row) for row in rows]


def event_of_alert(db: sqlite_utils.Database, alert_id: int) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM drift_events WHERE alert_id = ?", [alert_id]))
    return decode_event(rows[0]) if rows else None


def read_labelled_after(
    db: sqlite_utils.Database, after_id: int, limit: int
) -> list[dict[str, Any]]:
    """Return feedback rows with an id above ``after_id`` joined to their prediction.

    Each row has the feedback ``id``, ``model`` and ``label`` (as stored),
    the ``version`` that served the prediction and its ``predicted`` label
    (None when the model produced none). Feedback on a request that failed is left out.
    """
    return list(
        db.query(
            "SELECT f.id, f.model, f.label, p.version, "
            "json_extract(p.outputs_json, '$.label') AS predicted "
            "FROM feedback f JOIN predictions p "
            "ON p.request_id = f.request_id AND p.model = f.model "
            "WHERE f.id > ? AND p.status = 200 ORDER BY f.id LIMIT ?",
            [after_id, limit],
        )
    )


def decode_event(row: dict[str, Any]) -> dict[str, Any]:
    event = dict(row)
    event["stats"] = json.loads(event.pop("stats_json") or "{}")
    return event


def _decode_monitor(row: dict[str, Any]) -> dict[str, Any]:
    monitor = dict(row)
    monitor["params"] = json.loads(monitor.pop("params_json") or "{}")
    monitor["state"] = json.loads(monitor.pop("state_json") or "null")
    return monitor


def _dumps(value: Any) -> str:
    # allow_nan=False: a NaN in stored JSON would break strict clients.
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
