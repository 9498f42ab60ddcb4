"""The settings table's helpers: get, put, delete and prefix reads."""

from __future__ import annotations

from pathlib import Path

from store import Store, settings


def test_put_get_delete(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")

    with store.write() as db:
        settings.put(db, "a.b", "1")
        settings.put(db, "a.b", "2")

    assert settings.get(store.db, "a.b") == "2"
    with store.write() as db:
        settings.delete(db, "a.b")
        settings.delete(db, "missing")
    assert settings.get(store.db, "a.b") is None


def test_prefix_is_literal(tmp_path: Path) -> None:
    # LIKE would treat "_" as a wildcard and match "drift.retrainXpending.m".
    store = Store(tmp_path / "store.db")
    with store.write() as db:
        settings.put(db, "drift.retrain_pending.m", "1")
        settings.put(db, "drift.retrainXpending.m", "2")
        settings.put(db, "other", "3")

    rows = settings.with_prefix(store.db, "drift.retrain_pending.")

    assert rows == [("drift.retrain_pending.m", "1")]
