"""Alerts: things a person should see, until someone acknowledges them."""

from __future__ import annotations

import time
from typing import Any

import sqlite_utils

SEVERITIES = ("info", "warning", "critical")


def raise_alert(
    db: sqlite_utils.Database, *, kind: str, severity: str, source: str, message: str
) -> int:
    """Insert an alert inside the caller's write transaction; return its id.

    An identical alert that is still open is not repeated: its id is returned.
    """
    if severity not in SEVERITIES:
        raise ValueError(
            f"Unknown severity {severity!r}; expected one of {SEVERITIES}."
        )
    row = db.conn.execute(
        "SELECT id FROM alerts WHERE kind = ? AND source = ? AND message = ? "
        "AND acknowledged_at IS NULL",
        (kind, source, message),
    ).fetchone()
    if row:
        return row[0]
    cursor = db.conn.execute(
        "INSERT INTO alerts (kind, severity, source, message, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (kind, severity, source, message, time.time()),
    )
    return cursor.lastrowid


def get_alert(db: sqlite_utils.Database, alert_id: int) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]))
    return rows[0] if rows else None


def list_alerts(
    db: sqlite_utils.Database,
    *,
    open_only: bool = False,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return alerts newest first."""
    clauses, params = [], []
    if open_only:
        clauses.append("acknowledged_at IS NULL")
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    return list(
        db.query(
            f"SELECT * FROM alerts {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
    )


def acknowledge(db: sqlite_utils.Database, alert_id: int, actor: str) -> bool:
    """Mark an open alert acknowledged; return False if it already was."""
    cursor = db.conn.execute(
        "UPDATE alerts SET acknowledged_by = ?, acknowledged_at = ? "
        "WHERE id = ? AND acknowledged_at IS NULL",
        (actor, time.time(), alert_id),
    )
    return cursor.rowcount == 1
