"""The append-only, hash-chained audit log.

Each entry's hash is the sha256 of its own fields and the previous entry's
hash, so editing or deleting any row breaks the chain from that row on.
The newest id and hash are also kept in ``audit_head``, so deleting the
last rows is detected as well.

NOTE: the hashes use no secret key, so someone who can write the file can
also recompute every later hash and the head, and that rewrite is not
detected.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

import sqlite_utils

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of verifying the chain."""

    ok: bool
    checked: int
    first_bad_id: int | None
    message: str


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _entry_hash(row: dict[str, Any]) -> str:
    payload = json.dumps(
        [
            row["id"],
            repr(float(row["ts"])),
            row["actor"],
            row["action"],
            row["target"],
            row["reason"],
            row["before_json"],
            row["after_json"],
            row["prev_hash"],
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def append_entry(
    db: sqlite_utils.Database,
    *,
    actor: str,
    action: str,
    target: str,
    reason: str | None = None,
    before: Any = None,
    after: Any = None,
) -> int:
    """Append one entry; must run inside the caller's write transaction.

    Writing the entry in the same transaction as the change it records
    means both land or neither does.

    Returns:
        The new entry's id.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("append_entry() must run inside Store.write().")
    head = db.conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    last_id, prev_hash = head if head else (0, GENESIS_HASH)
    row = {
        "id": last_id + 1,
        "ts": time.time(),
        "actor": actor,
        "action": action,
        "target": target,
        "reason": reason,
        "before_json": _canonical(before),
        "after_json": _canonical(after),
        "prev_hash": prev_hash,
    }
    row["hash"] = _entry_hash(row)
    db["audit_entries"].insert(row)
    db.conn.execute(
        "INSERT INTO audit_head (singleton, last_id, last_hash) VALUES (1, ?, ?) "
        "ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id, "
        "last_hash = excluded.last_hash",
        (row["id"], row["hash"]),
    )
    return row["id"]


def verify_chain(db: sqlite_utils.Database) -> AuditCheck:
    """Check every entry's hash and link; name the first bad entry."""
    expected_id = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for row in db.query("SELECT * FROM audit_entries ORDER BY id"):
        if row["id"] != expected_id:
            return AuditCheck(
                False,
                checked,
                expected_id,
                f"Audit entry {expected_id} is missing (deleted); the chain "
                f"jumps from entry {expected_id - 1} to entry {row['id']}.",
            )
        if row["prev_hash"] != prev_hash:
            return AuditCheck(
                False,
                checked,
                row["id"],
                f"Audit entry {row['id']} does not link to entry "
                f"{row['id'] - 1}: its prev_hash was changed.",
            )
        if _entry_hash(row) != row["hash"]:
            return AuditCheck(
                False,
                checked,
                row["id"],
                f"Audit entry {row['id']} was modified: its stored hash does not "
                "match its contents.",
            )
        prev_hash = row["hash"]
        expected_id += 1
        checked += 1
    head = db.conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    head_problem = _check_head(head, expected_id - 1, prev_hash)
    if head_problem is not None:
        first_bad_id, message = head_problem
        return AuditCheck(False, checked, first_bad_id, message)
    return AuditCheck(
        True, checked, None, f"The audit chain of {checked} entries verifies."
    )


def _check_head(
    head: tuple[int, str] | None, last_id: int, last_hash: str
) -> tuple[int, str] | None:
    """Return the first bad id and a message if ``audit_head`` disagrees, else None.

    ``append_entry`` writes the head in the same transaction as each entry,
    so any difference means rows were deleted, added or rewritten by hand.
    """
    if head is None:
        if last_id == 0:
            return None
        return (
            last_id,
            f"The audit log head is missing although {last_id} entries exist, so "
            "entries deleted from the end cannot be ruled out.",
        )
    head_id, head_hash = head
    if head_id > last_id:
        return (
            last_id + 1,
            f"Audit entries after {last_id} are missing: the log head records "
            f"entry {head_id} as the newest.",
        )
    if head_id < last_id:
        return (
            head_id + 1,
            f"Audit entry {head_id + 1} was added without the log head, which "
            f"records entry {head_id} as the newest.",
        )
    if head_hash != last_hash:
        return (
            last_id,
            f"Audit entry {last_id} was modified: its hash does not match the "
            "one recorded in the log head.",
        )
    return None


def list_entries(
    db: sqlite_utils.Database,
    *,
    since: float | None = None,
    actor: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Return entries oldest first, filtered by time, actor and id cursor."""
    clauses, params = [], []
    if since is not None:
        clauses.append("ts >= ?")
        params.append(since)
    if actor is not None:
        clauses.append("actor = ?")
        params.append(actor)
    if after_id is not None:
        clauses.append("id > ?")
        params.append(after_id)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = db.query(
        f"SELECT * FROM audit_entries {where} ORDER BY id LIMIT ?", [*params, limit]
    )
    return [_decode(row) for row in rows]


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    entry = dict(row)
    entry["before"] = json.loads(entry.pop("before_json") or "null")
    entry["after"] = json.loads(entry.pop("after_json") or "null")
    return entry
