"""Schema migrations by ``PRAGMA user_version``, on real database files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import SchemaError, Store
from store._schema import MIGRATIONS


def _user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


def _table_names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}


def test_fresh_file_gets_latest_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "store.db"

    store = Store(path)
    version = store.migrate()
    store.close()

    assert version == len(MIGRATIONS)
    assert _user_version(path) == len(MIGRATIONS)
    assert {"tokens", "audit_entries", "audit_head", "telemetry_samples"} <= (
        _table_names(path)
    )


def test_fresh_file_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "store.db"

    Store(path).close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_keeps_version_and_rows(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path)
    with store.write() as db:
        db.conn.execute("INSERT INTO settings (key, value) VALUES ('kept', '1')")
    store.close()

    reopened = Store(path)
    rows = reopened.db.conn.execute("SELECT value FROM settings WHERE key = 'kept'")
    values = [row[0] for row in rows]
    reopened.close()

    assert values == ["1"]
    assert _user_version(path) == len(MIGRATIONS)


def test_newer_schema_version_raises_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {newer}")

    with pytest.raises(SchemaError) as raised:
        Store(path)

    message = str(raised.value)
    assert f"schema version {newer}" in message
    assert f"({len(MIGRATIONS)})" in message
    assert str(path) in message
    assert _user_version(path) == newer


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    # A table that migration 1 creates near its end already exists, so the
    # migration fails after most of its statements have run.
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notifications (legacy TEXT)")

    with pytest.raises(SchemaError) as raised:
        Store(path)

    assert "notifications already exists" in str(raised.value)
    assert "migration 1" in str(raised.value).lower()
    assert _user_version(path) == 0
    assert _table_names(path) == {"notifications"}


def test_migration_succeeds_once_conflict_removed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notifications (legacy TEXT)")
    with pytest.raises(SchemaError):
        Store(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE notifications")

    Store(path).close()

    assert _user_version(path) == len(MIGRATIONS)
