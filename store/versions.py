"""Model versions: immutable builds with metrics, lineage and gate verdicts.

A version's number is the model's highest number plus one, taken inside
the same write transaction that inserts the row and its gate results, so
a version is either registered whole or not at all.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from store.errors import NotFoundError, StoreError

GATE_STATES = ("pending", "passed", "failed", "overridden")


@dataclass(frozen=True)
class GateVerdictRow:
    """One gate's verdict as the store keeps it."""

    gate: str
    passed: bool
    reason: str
    details: dict[str, Any]


class OverrideError(StoreError):
    """An override of a version whose gates did not fail."""


def insert_version(
    db: sqlite_utils.Database,
    *,
    model: str,
    run_id: int | None,
    artifact_path: str,
    artifact_sha256: str,
    metrics: dict[str, Any],
    lineage: dict[str, Any],
    reference: dict[str, Any],
    verdicts: list[GateVerdictRow],
) -> dict[str, Any]:
    """Insert version N+1 of ``model`` with its gate results; return the row.

    Must run inside the caller's write transaction. The gate state is
    ``passed`` when every verdict passed (also when there are none) and
    ``failed`` otherwise.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("insert_version() must run inside Store.write().")
    number = (
        1
        + db.conn.execute(
            "SELECT COALESCE(MAX(number), 0) FROM versions WHERE model = ?", (model,)
        ).fetchone()[0]
    )
    now = time.time()
    gate_state = "passed" if all(verdict.passed for verdict in verdicts) else "failed"
    cursor = db.conn.execute(
        "INSERT INTO versions (model, number, run_id, created_at, artifact_path, "
        "artifact_sha256, metrics_json, lineage_json, reference_json, gate_state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            model,
            number,
            run_id,
            now,
            artifact_path,
            artifact_sha256,
            _dumps(metrics),
            _dumps(lineage),
            _dumps(reference),
            gate_state,
        ),
    )
    version_id = cursor.lastrowid
    for verdict in verdicts:
        db.conn.execute(
            "INSERT INTO gate_results (version_id, gate, passed, reason, details_json, "
            "evaluated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                version_id,
                verdict.gate,
                int(verdict.passed),
                verdict.reason,
                _dumps(verdict.details),
                now,
            ),
        )
    return get_version(db, model, number)


def get_version(
    db: sqlite_utils.Database, model: str, number: int, *, with_reference: bool = True
) -> dict[str, Any]:
    """Return one version with its gate results; raise NotFoundError."""
    rows = list(
        db.query(
            "SELECT * FROM versions WHERE model = ? AND number = ?", [model, number]
        )
    )
    if not rows:
        raise NotFoundError(f"Model {model!r} has no version {number}.")
    return _decode(db, rows[0], with_reference=with_reference)


def find_version(
    db: sqlite_utils.Database, model: str, number: int
) -> dict[str, Any] | None:
    try:
        return get_version(db, model, number)
    except NotFoundError:
        return None


def version_of_run(db: sqlite_utils.Database, run_id: int) -> int | None:
    """Return the number of the version a run registered, if any."""
    row = db.conn.execute(
        "SELECT number FROM versions WHERE run_id = ?", (run_id,)
    ).fetchone()
    return row[0] if row else None


def list_versions(
    db: sqlite_utils.Database,
    model: str,
    *,
    before_number: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return a model's versions newest first, without reference statistics."""
    clauses, params = ["model = ?"], [model]
    if before_number is not None:
        clauses.append("number < ?")
        params.append(before_number)
    rows = db.query(
        f"SELECT * FROM versions WHERE {' AND '.join(clauses)} ORDER BY number DESC "
        "LIMIT ?",
        [*params, limit],
    )
    return [_decode(db, row, with_reference=False) for row in rows]


def override_gates(
    db: sqlite_utils.Database, model: str, number: int, actor: str, reason: str
) -> dict[str, Any]:
    """Mark a version whose gates failed as ``overridden``; return the row.

    Must run inside the caller's write transaction, which should also
    append the audit entry. Raises NotFoundError, or OverrideError when
    the gate state is not ``failed``.
    """
    version = get_version(db, model, number, with_reference=False)
    if version["gate_state"] != "failed":
        raise OverrideError(
            f"Version {number} of model {model!r} has gate state "
            f"{version['gate_state']!r}; only a version whose gates failed can be "
            "overridden."
        )
    db.conn.execute(
        "UPDATE versions SET gate_state = 'overridden', overridden_by = ?, "
        "override_reason = ?, overridden_at = ? WHERE id = ? AND gate_state = 'failed'",
        (actor, reason, time.time(), version["id"]),
    )
    return get_version(db, model, number, with_reference=False)


def releasable(version: dict[str, Any]) -> tuple[bool, str]:
    """Return whether a version may be released, and why (not)."""
    state = version["gate_state"]
    if state == "passed":
        return True, "Every gate passed."
    if state == "overridden":
        return True, (
            f"Its gates failed but {version['overridden_by']} overrode them: "
            f"{version['override_reason']}"
        )
    if state == "failed":
        failed = [
            gate["gate"] for gate in version.get("gates", []) if not gate["passed"]
        ]
        return False, (
            f"Gates failed ({', '.join(failed) or 'see gate results'}); an admin can "
            "override them with a reason."
        )
    return False, "Its gates have not been evaluated yet."


def stable_version(db: sqlite_utils.Database, model: str) -> int | None:
    """Return the version in production (``deployments.stable_version``), if any."""
    row = db.conn.execute(
        "SELECT stable_version FROM deployments WHERE model = ?", (model,)
    ).fetchone()
    return row[0] if row else None


def list_models(
    db: sqlite_utils.Database, *, after_name: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Return models by name with their latest and deployed versions."""
    params: list[Any] = []
    where = ""
    if after_name is not None:
        where = "WHERE m.name > ?"
        params.append(after_name)
    rows = db.query(
        f"""
        SELECT m.name, m.created_at, m.config_json,
               (SELECT MAX(number) FROM versions v WHERE v.model = m.name)
                   AS latest_version,
               (SELECT COUNT(*) FROM versions v WHERE v.model = m.name)
                   AS version_count,
               d.stable_version, d.canary_version, d.canary_weight
        FROM models m LEFT JOIN deployments d ON d.model = m.name
        {where} ORDER BY m.name LIMIT ?
        """,
        [*params, limit],
    )
    models = []
    for row in rows:
        model = dict(row)
        model["config"] = json.loads(model.pop("config_json") or "{}")
        models.append(model)
    return models


def gate_results(db: sqlite_utils.Database, version_id: int) -> list[dict[str, Any]]:
    rows = db.query(
        "SELECT gate, passed, reason, details_json, evaluated_at FROM gate_results "
        "WHERE version_id = ? ORDER BY id",
        [version_id],
    )
    results = []
    for row in rows:
        result = dict(row)
        result["passed"] = bool(result["passed"])
        result["details"] = json.loads(result.pop("details_json") or "{}")
        results.append(result)
    return results


def _decode(
    db: sqlite_utils.Database, row: dict[str, Any], *, with_reference: bool
) -> dict[str, Any]:
    version = dict(row)
    version["metrics"] = json.loads(version.pop("metrics_json") or "{}")
    version["lineage"] = json.loads(version.pop("lineage_json") or "{}")
    reference = version.pop("reference_json")
    if with_reference:
        version["reference"] = json.loads(reference or "{}")
    version["gates"] = gate_results(db, version["id"])
    return version


def _dumps(value: Any) -> str:
    # allow_nan=False: a NaN metric would make the API emit invalid JSON.
    return json.dumps(value, sort_keys=True, allow_nan=False)
