"""Models and their training jobs, and the record of every job fire.

A fire is one moment a job's trigger came due (or an operator triggered
it). Its outcome is ``started`` (a run was queued), ``missed`` (too late,
or folded into a later fire while the agent was stopped), ``skipped`` (the
model's previous run was still active) or ``refused`` (no healthy GPU).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

import sqlite_utils

FIRE_OUTCOMES = ("started", "missed", "skipped", "refused")


class FireRecord(NamedTuple):
    """Outcome of one fire, with the run it queued and the reason."""

    outcome: str
    run_id: int | None
    detail: str | None


def upsert_model(db: sqlite_utils.Database, name: str, config: dict[str, Any]) -> None:
    """Create the model row, or update its configuration; keeps ``created_at``."""
    db.conn.execute(
        "INSERT INTO models (name, created_at, config_json) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET config_json = excluded.config_json",
        (name, time.time(), json.dumps(config, sort_keys=True, default=str)),
    )


def upsert_job(
    db: sqlite_utils.Database, name: str, model: str, trigger: dict[str, Any]
) -> None:
    """Create or update a job; a changed trigger clears the stored next fire time.

    The stored ``next_fire_at`` only means something for the trigger that
    computed it, so a new cron expression or interval starts afresh.
    """
    trigger_json = json.dumps(trigger, sort_keys=True)
    row = db.conn.execute(
        "SELECT trigger_json FROM jobs WHERE name = ?", (name,)
    ).fetchone()
    now = time.time()
    if row is None:
        db.conn.execute(
            "INSERT INTO jobs (name, model, trigger_json, updated_at) VALUES (?, ?, ?, "
            "?)",
            (name, model, trigger_json, now),
        )
    elif row[0] != trigger_json:
        db.conn.execute(
            "UPDATE jobs SET model = ?, trigger_json = ?, next_fire_at = NULL, "
            "updated_at = ? WHERE name = ?",
            (model, trigger_json, now, name),
        )


def set_next_fire(
    db: sqlite_utils.Database, name: str, next_fire_at: float | None
) -> None:
    db.conn.execute(
        "UPDATE jobs SET next_fire_at = ?, updated_at = ? WHERE name = ?",
        (next_fire_at, time.time(), name),
    )


def get_job(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM jobs WHERE name = ?", [name]))
    return _decode_job(rows[0]) if rows else None


def list_jobs(
    db: sqlite_utils.Database, *, after_name: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return jobs ordered by name, after a name cursor."""
    if after_name is None:
        rows = db.query("SELECT * FROM jobs ORDER BY name LIMIT ?", [limit])
    else:
        rows = db.query(
            "SELECT * FROM jobs WHERE name > ? ORDER BY name LIMIT ?",
            [after_name, limit],
        )
    return [_decode_job(row) for row in rows]


def record_fire(
    db: sqlite_utils.Database,
    job: str,
    outcome: str,
    *,
    scheduled_at: float | None,
    run_id: int | None = None,
    detail: str | None = None,
) -> int:
    """Insert a job fire inside the caller's write transaction; return its id."""
    if outcome not in FIRE_OUTCOMES:
        raise ValueError(
            f"Unknown fire outcome {outcome!r}; expected one of {FIRE_OUTCOMES}."
        )
    cursor = db.conn.execute(
        "INSERT INTO job_fires (job, scheduled_at, recorded_at, outcome, run_id, "
        "detail) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (job, scheduled_at, time.time(), outcome, run_id, detail),
    )
    return cursor.lastrowid


def list_fires(
    db: sqlite_utils.Database,
    job: str,
    *,
    outcome: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return a job's fires newest first."""
    clauses, params = ["job = ?"], [job]
    if outcome is not None:
        clauses.append("outcome = ?")
        params.append(outcome)
    if before_id is not None:
        clauses.append("id < ?")
        params.append(before_id)
    return list(
        db.query(
            f"SELECT * FROM job_fires WHERE {' AND '.join(clauses)} "
            "ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
    )


def fire_counts(db: sqlite_utils.Database, job: str) -> dict[str, int]:
    """Return how many fires of each outcome the job has had."""
    counts = dict.fromkeys(FIRE_OUTCOMES, 0)
    for outcome, count in db.conn.execute(
        "SELECT outcome, COUNT(*) FROM job_fires WHERE job = ? GROUP BY outcome", (job,)
    ):
        counts[outcome] = count
    return counts


def _decode_job(row: dict[str, Any]) -> dict[str, Any]:
    job = dict(row)
    job["trigger"] = json.loads(job.pop("trigger_json"))
    return job
