"""The ``settings`` table: small values the agent keeps across restarts.

Call ``put`` and ``delete`` inside ``Store.write()``, so that a setting
changes in the same transaction as the state it describes.
"""

from __future__ import annotations

from typing import Any


def get(db: Any, key: str) -> str | None:
    """Return the value of ``key``, or None when it is not set."""
    row = db.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return row[0] if row else None


def with_prefix(db: Any, prefix: str) -> list[tuple[str, str]]:
    """Return ``(key, value)`` for every key that starts with ``prefix``."""
    return db.conn.execute(
        "SELECT key, value FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key",
        (len(prefix), prefix),
    ).fetchall()


def put(db: Any, key: str, value: str) -> None:
    """Set ``key`` to ``value``, replacing any earlier value."""
    db.conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def delete(db: Any, key: str) -> None:
    """Remove ``key``; nothing happens when it is not set."""
    db.conn.execute("DELETE FROM settings WHERE key = ?", (key,))
