"""Logged predictions, feedback labels, and the statistics a canary is judged on.

The serving worker writes one ``predictions`` row per input row that a
version answered. A request of one row is stored under its request id; row
N of a larger batch under ``REQUEST_ID/N`` (see ``row_key``). Feedback
labels are stored under the same keys, so that ``feedback`` joins
``predictions`` one to one on ``request_id`` and model, which is the join
training runs with ``include_feedback`` read.

``features_json`` is the row's features as a JSON list in the model's
feature order. ``outputs_json`` is ``{"label": ..., "probabilities":
[...]}``, with nulls where the model produced a non-finite value; such
rows have ``nonfinite = 1``. ``status`` is the HTTP status of the request:
200, or 500 when the model failed while computing it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import sqlite_utils

from store.errors import StoreError

PREDICTION_COLUMNS = (
    "model",
    "version",
    "request_id",
    "row_index",
    "ts",
    "features_json",
    "outputs_json",
    "latency_seconds",
    "status",
    "nonfinite",
)

_INSERT_PREDICTION = (
    f"INSERT INTO predictions ({', '.join(PREDICTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in PREDICTION_COLUMNS)})"
)


class DuplicateFeedbackError(StoreError):
    """Feedback for a prediction that already has a label."""

    def __init__(self, model: str, request_id: str) -> None:
        super().__init__(
            f"Feedback for request {request_id!r} of model {model!r} is stored "
            "already; each prediction takes one label."
        )
        self.model = model
        self.request_id = request_id


def row_key(request_id: str, row_index: int, rows: int) -> str:
    """Return the key one row of a request is stored under."""
    return request_id if rows == 1 else f"{request_id}/{row_index}"


def insert_predictions(db: sqlite_utils.Database, rows: Sequence[tuple]) -> None:
    """Insert rows shaped like ``PREDICTION_COLUMNS`` in the caller's transaction."""
    db.conn.executemany(_INSERT_PREDICTION, rows)


def request_rows(db: sqlite_utils.Database, model: str, request_id: str) -> int:
    """Return how many logged rows a request has; 0 when none was logged."""
    # '/' sorts just before '0', so this range holds exactly the keys
    # 'ID/...' and the predictions_request index serves it.
    row = db.conn.execute(
        "SELECT COUNT(*) FROM predictions WHERE model = ? AND "
        "(request_id = ? OR (request_id >= ? AND request_id < ?))",
        (model, request_id, f"{request_id}/", f"{request_id}0"),
    ).fetchone()
    return row[0]


def insert_feedback(
    db: sqlite_utils.Database,
    model: str,
    labels: Iterable[tuple[str, str]],
    ts: float,
) -> int:
    """Store (row key, label) pairs in the caller's transaction; return the count.

    Raises:
        DuplicateFeedbackError: a key already has a label; nothing is stored
            if the caller rolls the transaction back.
    """
    count = 0
    for key, label in labels:
        cursor = db.conn.execute(
            "INSERT INTO feedback (model, request_id, label, ts) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (model, request_id) DO NOTHING",
            (model, key, label, ts),
        )
        if cursor.rowcount != 1:
            raise DuplicateFeedbackError(model, key)
        count += 1
    return count


def label_text(label: Any) -> str:
    """Return how a label is stored: integers as digits, strings unchanged.

    Training reads integer-like strings back as integers, so a label sent
    as 1, 1.0 or "1" trains as the same class.
    """
    if isinstance(label, bool):
        return str(int(label))
    if isinstance(label, float) and math.isfinite(label) and label.is_integer():
        return str(int(label))
    return str(label)


def version_stats(
    db: sqlite_utils.Database, model: str, version: int, since: float
) -> dict[str, Any]:
    """Summarise how one version served since ``since`` (Unix seconds).

    Returns:
        ``requests`` (logged requests), ``rows``, ``server_errors`` (requests
        with status 500), ``nonfinite_rows``, ``latency_p95_seconds`` over
        requests (None without any), ``labelled`` (rows with feedback),
        ``label_errors`` (labelled rows whose predicted label differs or is
        null) and ``error_rate`` (label_errors / labelled, None without
        labels).
    """
    requests, rows, server_errors, nonfinite = db.conn.execute(
        "SELECT COALESCE(SUM(row_index = 0), 0), COUNT(*), "
        "COALESCE(SUM(status >= 500 AND row_index = 0), 0), "
        "COALESCE(SUM(nonfinite), 0) "
        "FROM predictions WHERE model = ? AND version = ? AND ts >= ?",
        (model, version, since),
    ).fetchone()
    labelled, label_errors = db.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN json_extract(p.outputs_json, "
        "'$.label') IS NULL OR CAST(json_extract(p.outputs_json, '$.label') AS TEXT) "
        "!= f.label THEN 1 ELSE 0 END), 0) "
        "FROM feedback f JOIN predictions p "
        "ON p.request_id = f.request_id AND p.model = f.model "
        "WHERE p.model = ? AND p.version = ? AND p.ts >= ?",
        (model, version, since),
    ).fetchone()
    return {
        "requests": requests,
        "rows": rows,
        "server_errors": server_errors,
        "nonfinite_rows": nonfinite,
        "latency_p95_seconds": _latency_p95(db, model, version, since, requests),
        "labelled": labelled,
        "label_errors": label_errors,
        "error_rate": label_errors / labelled if labelled else None,
    }


def read_after(
    db: sqlite_utils.Database, after_id: int, limit: int = 1000
) -> list[dict[str, Any]]:
    """Return predictions with an id above ``after_id``, oldest first, decoded."""
    rows = db.query(
        "SELECT * FROM predictions WHERE id > ? ORDER BY id LIMIT ?", [after_id, limit]
    )
    decoded = []
    for row in rows:
        item = dict(row)
        item["features"] = json.loads(item.pop("features_json"))
        item["outputs"] = json.loads(item.pop("outputs_json"))
        item["nonfinite"] = bool(item["nonfinite"])
        decoded.append(item)
    return decoded


def last_id(db: sqlite_utils.Database) -> int:
    """Return the id of the newest prediction, 0 when there is none."""
    return db.conn.execute("SELECT COALESCE(MAX(id), 0) FROM predictions").fetchone()[0]


def _latency_p95(
    db: sqlite_utils.Database, model: str, version: int, since: float, requests: int
) -> float | None:
    if requests == 0:
        return None
    # Nearest-rank percentile over the first row of each logged request.
    rank = math.ceil(0.95 * requests)
    row = db.conn.execute(
        "SELECT latency_seconds FROM predictions WHERE model = ? AND version = ? "
        "AND ts >= ? AND row_index = 0 ORDER BY latency_seconds LIMIT 1 OFFSET ?",
        (model, version, since, rank - 1),
    ).fetchone()
    return row[0] if row else None
