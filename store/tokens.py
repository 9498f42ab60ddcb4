"""Bearer tokens: random, shown once, stored as a sha256 hash.

A token carries 256 bits from ``secrets``, so a plain sha256 is enough to
store it; a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import sqlite_utils

ROLES = ("viewer", "operator", "approver", "admin")
TOKEN_PREFIX = "rdk_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(db: sqlite_utils.Database, name: str, role: str) -> tuple[str, dict]:
    """Insert a token row inside the caller's write transaction.

    Returns:
        The token in clear text (shown once, never stored) and its public row.
    """
    token = new_token()
    row = {
        "name": name,
        "role": role,
        "token_sha256": hash_token(token),
        "created_at": time.time(),
    }
    db["tokens"].insert(row)
    return token, public_row(_by_name(db, name))


def _by_name(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM tokens WHERE name = ?", [name]))
    return rows[0] if rows else None


def get_token(db: sqlite_utils.Database, name: str) -> dict[str, Any] | None:
    row = _by_name(db, name)
    return public_row(row) if row else None


def find_active(db: sqlite_utils.Database, token: str) -> dict[str, Any] | None:
    """Return the active token row whose hash matches ``token``, or None."""
    rows = list(
        db.query(
            "SELECT * FROM tokens WHERE token_sha256 = ? AND revoked_at IS NULL",
            [hash_token(token)],
        )
    )
    return public_row(rows[0]) if rows else None


def list_tokens(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    return [public_row(row) for row in db.query("SELECT * FROM tokens ORDER BY name")]


def revoke_token(db: sqlite_utils.Database, name: str) -> None:
    db.conn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
        (time.time(), name),
    )


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its hash: safe to print, log and return."""
    return {key: value for key, value in row.items() if key != "token_sha256"}
