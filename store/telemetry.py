"""Telemetry samples, one-minute rollups and retention.

Raw samples are kept for a configurable number of hours. Completed minutes
are rolled up (count, mean, min, max) and the rollups kept for 30 days by
default. Queries with a step of a minute or more read the rollups, plus
the raw samples of the minutes not rolled up yet.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import sqlite_utils

WATERMARK_KEY = "telemetry_rollup_watermark"
MINUTE_SECONDS = 60.0


class Sample(NamedTuple):
    ts: float
    metric: str
    labels: str
    value: float


def encode_labels(labels: dict[str, str] | None) -> str:
    """Encode labels canonically (sorted JSON), '' when there are none."""
    if not labels:
        return ""
    return json.dumps(
        {k: str(v) for k, v in sorted(labels.items())}, separators=(",", ":")
    )


def insert_samples(db: sqlite_utils.Database, samples: Iterable[Sample]) -> int:
    """Insert finite samples inside the caller's write transaction.

    A non-finite value is not a measurement, so it is skipped rather than
    stored. Returns the number of rows written.
    """
    rows = [tuple(s) for s in samples if s.value is not None and math.isfinite(s.value)]
    db.conn.executemany(
        "INSERT INTO telemetry_samples (ts, metric, labels, value) VALUES (?, ?, ?, ?)",
        rows,
    )
    return len(rows)


def _watermark(db: sqlite_utils.Database) -> float | None:
    row = db.conn.execute(
        "SELECT value FROM settings WHERE key = ?", (WATERMARK_KEY,)
    ).fetchone()
    return float(row[0]) if row else None


def roll_up(db: sqlite_utils.Database, now: float) -> int:
    """Roll every completed minute of raw samples up; inside a write transaction.

    Returns the number of rollup rows written.
    """
    end = math.floor(now / MINUTE_SECONDS) * MINUTE_SECONDS
    start = _watermark(db)
    if start is None:
        first = db.conn.execute("SELECT MIN(ts) FROM telemetry_samples").fetchone()[0]
        if first is None:
            return 0
        start = math.floor(first / MINUTE_SECONDS) * MINUTE_SECONDS
    if end <= start:
        return 0
    cursor = db.conn.execute(
        """
        INSERT INTO telemetry_rollups (minute, metric, labels, count, mean, min, max)
        SELECT CAST(ts / 60 AS INTEGER) * 60.0 AS minute, metric, labels,
               COUNT(*), AVG(value), MIN(value), MAX(value)
        FROM telemetry_samples WHERE ts >= ? AND ts < ?
        GROUP BY minute, metric, labels
        ON CONFLICT (metric, labels, minute) DO UPDATE SET
            mean = (mean * count + excluded.mean * excluded.count)
                   / (count + excluded.count),
            count = count + excluded.count,
            min = MIN(min, excluded.min),
            max = MAX(max, excluded.max)
        """,
        (start, end),
    )
    db.conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (WATERMARK_KEY, repr(end)),
    )
    return cursor.rowcount


def prune(
    db: sqlite_utils.Database, now: float, raw_hours: float, rollup_days: float
) -> tuple[int, int]:
    """Delete raw samples and rollups past retention; inside a write transaction.

    Raw samples not yet rolled up are kept whatever their age, so a long
    pause of the agent never loses a minute that was never summarised.
    Returns the number of raw and rollup rows deleted.
    """
    watermark = _watermark(db) or 0.0
    raw_cutoff = min(now - raw_hours * 3600, watermark)
    raw = db.conn.execute(
        "DELETE FROM telemetry_samples WHERE ts < ?", (raw_cutoff,)
    ).rowcount
    rollups = db.conn.execute(
        "DELETE FROM telemetry_rollups WHERE minute < ?", (now - rollup_days * 86400,)
    ).rowcount
    return raw, rollups


def query_series(
    db: sqlite_utils.Database,
    metric: str,
    since: float,
    until: float,
    step: float,
) -> list[dict[str, Any]]:
    """Return one series per label set, bucketed by ``step`` seconds.

    Buckets start at multiples of ``step`` since the Unix epoch, as in
    Prometheus range queries. Each point is
    ``[bucket_start, mean, min, max, count]``, oldest first.
    """
    buckets: dict[tuple[str, int], list[float]] = {}
    use_rollups = step >= MINUTE_SECONDS
    raw_from = since
    if use_rollups:
        watermark = _watermark(db)
        if watermark is not None:
            raw_from = max(since, watermark)
            rows = db.conn.execute(
                """
                SELECT labels, CAST(minute / ? AS INTEGER) AS b,
                       SUM(count), SUM(mean * count), MIN(min), MAX(max)
                FROM telemetry_rollups
                WHERE metric = ? AND minute >= ? AND minute < ? AND minute < ?
                GROUP BY labels, b
                """,
                (step, metric, since, until, watermark),
            )
            _merge(buckets, rows)
    rows = db.conn.execute(
        """
        SELECT labels, CAST(ts / ? AS INTEGER) AS b,
               COUNT(*), SUM(value), MIN(value), MAX(value)
        FROM telemetry_samples
        WHERE metric = ? AND ts >= ? AND ts < ?
        GROUP BY labels, b
        """,
        (step, metric, raw_from, until),
    )
    _merge(buckets, rows)
    return _to_series(buckets, step)


def _merge(buckets: dict[tuple[str, int], list[float]], rows: Iterable[tuple]) -> None:
    for labels, bucket, count, total, low, high in rows:
        current = buckets.get((labels, bucket))
        if current is None:
            buckets[(labels, bucket)] = [count, total, low, high]
        else:
            current[0] += count
            current[1] += total
            current[2] = min(current[2], low)
            current[3] = max(current[3], high)


def _to_series(
    buckets: dict[tuple[str, int], list[float]], step: float
) -> list[dict[str, Any]]:
    series: dict[str, list[list[float]]] = {}
    for (labels, bucket), (count, total, low, high) in sorted(buckets.items()):
        series.setdefault(labels, []).append(
            [bucket * step, total / count, low, high, int(count)]
        )
    return [
        {"labels": json.loads(labels) if labels else {}, "points": points}
        for labels, points in series.items()
    ]


def list_metrics(db: sqlite_utils.Database) -> list[str]:
    """Names of the metrics that have samples or rollups."""
    rows = db.conn.execute(
        "SELECT DISTINCT metric FROM telemetry_samples "
        "UNION SELECT DISTINCT metric FROM telemetry_rollups ORDER BY 1"
    )
    return [row[0] for row in rows]
