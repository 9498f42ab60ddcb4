"""Concurrent writers on one store file: no "database is locked" escapes.

A deferred transaction that reads and then writes cannot upgrade its lock
once another connection has committed, and SQLite returns BUSY at once,
whatever the busy timeout. ``Store.write()`` starts every write with
``BEGIN IMMEDIATE`` so that the busy timeout applies, and retries and
counts a BUSY that outlasts it.
"""

from __future__ import annotations

import multiprocessing
import queue
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import wait_for

from store import Store, StoreBusyError, alerts, audit, connect, telemetry, tokens

# Bounds of the soak. Every worker stops at whichever comes first.
SOAK_TRANSACTIONS_PER_WORKER = 3000
SOAK_SECONDS = 2.0
SAMPLES_PER_TRANSACTION = 10
WRITER_KINDS = ("telemetry", "audit", "tokens", "alerts")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    yield store
    store.close()


def _write_once(store: Store, kind: str, worker: str, index: int) -> int:
    """Commit one transaction of ``kind``; return the rows it added."""
    with store.write() as db:
        if kind == "telemetry":
            samples = [
                telemetry.Sample(time.time(), f"soak.{worker}", "", float(i))
                for i in range(SAMPLES_PER_TRANSACTION)
            ]
            return telemetry.insert_samples(db, samples)
        if kind == "audit":
            audit.append_entry(
                db, actor=worker, action="soak.write", target=f"n/{index}"
            )
            return 1
        if kind == "tokens":
            name = f"{worker}-{index}"
            tokens.create_token(db, name, "viewer")
            audit.append_entry(db, actor=worker, action="token.create", target=name)
            return 1
        if kind == "alerts":
            # Read, then write: the pattern that fails in a deferred transaction.
            alert_id = alerts.raise_alert(
                db,
                kind="soak",
                severity="info",
                source=worker,
                message=f"alert {index}",
            )
            alerts.acknowledge(db, alert_id, worker)
            return 1
    raise ValueError(f"Unknown soak workload {kind!r}.")


def _read_once(store: Store, worker: str) -> None:
    db = store.db
    audit.list_entries(db, limit=50)
    telemetry.query_series(db, f"soak.{worker}", 0, time.time() + 60, 60)
    tokens.find_active(db, "rdk_not-a-real-token")
    alerts.list_alerts(db, open_only=True, limit=50)


def _run_workload(store: Store, kind: str, worker: str, seconds: float) -> dict:
    """Run one worker's loop and report what it committed and every error."""
    committed = 0
    reads = 0
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    for index in range(SOAK_TRANSACTIONS_PER_WORKER):
        if time.monotonic() > deadline:
            break
        try:
            if kind == "reader":
                _read_once(store, worker)
                reads += 1
            else:
                committed += _write_once(store, kind, worker, index)
        except Exception:
            errors.append(traceback.format_exc())
            break
    return {
        "worker": worker,
        "kind": kind,
        "committed": committed,
        "reads": reads,
        "errors": errors,
    }


def _soak_process(path: str, kind: str, worker: str, ready, start, results) -> None:
    store = Store(path)
    ready.put(worker)
    start.wait(60)
    results.put(_run_workload(store, kind, worker, SOAK_SECONDS))
    store.close()


def _soak_thread(store: Store, kind: str, worker: str, start, results) -> None:
    start.wait(60)
    results.put(_run_workload(store, kind, worker, SOAK_SECONDS))


def _committed_rows(store: Store, kind: str, worker: str) -> int:
    queries = {
        "telemetry": (
            "SELECT COUNT(*) FROM telemetry_samples WHERE metric = ?",
            "soak.",
        ),
        "audit": ("SELECT COUNT(*) FROM audit_entries WHERE actor = ?", ""),
        "tokens": ("SELECT COUNT(*) FROM tokens WHERE name LIKE ? || '-%'", ""),
        "alerts": (
            "SELECT COUNT(*) FROM alerts "
            "WHERE source = ? AND acknowledged_by IS NOT NULL",
            "",
        ),
    }
    sql, prefix = queries[kind]
    return store.db.conn.execute(sql, (prefix + worker,)).fetchone()[0]


@pytest.mark.slow
def test_soak_of_threads_and_processes_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shared = Store(path)
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    processes = [
        context.Process(
            target=_soak_process,
            args=(str(path), kind, f"p-{kind}", ready, start, results),
        )
        for kind in (*WRITER_KINDS, "reader")
    ]
    threads = [
        threading.Thread(
            target=_soak_thread, args=(shared, kind, f"t-{kind}", start, results)
        )
        for kind in (*WRITER_KINDS, "reader", "reader")
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=60)
    for thread in threads:
        thread.start()

    start.set()
    reports = [results.get(timeout=60) for _ in range(len(processes) + len(threads))]
    for thread in threads:
        thread.join(60)
    for process in processes:
        process.join(60)

    errors = [error for report in reports for error in report["errors"]]
    assert errors == []
    assert [process.exitcode for process in processes] == [0] * len(processes)
    for report in reports:
        if report["kind"] == "reader":
            assert report["reads"] > 0, report
            continue
        assert report["committed"] > 0, report
        assert (
            _committed_rows(shared, report["kind"], report["worker"])
            == (report["committed"])
        ), report
    check = audit.verify_chain(shared.db)
    assert check.ok, check.message
    assert shared.quick_check() == "ok"
    shared.close()


def test_deferred_read_then_write_fails_at_once(tmp_path: Path) -> None:
    # The failure that BEGIN IMMEDIATE prevents, shown on this SQLite build:
    # the busy timeout of 5 s does not apply to a stale read snapshot.
    path = tmp_path / "store.db"
    Store(path).close()
    reader, writer = connect(path), connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM settings").fetchone()
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO settings (key, value) VALUES ('a', '1')")
    writer.execute("COMMIT")

    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        reader.execute("INSERT INTO settings (key, value) VALUES ('b', '2')")
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    reader.close()
    writer.close()


def test_read_then_write_waits_for_other_writer(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path, busy_timeout_ms=100, write_attempts=200)
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO settings (key, value) VALUES ('first', '1')")
    outcome: queue.Queue = queue.Queue()

    def read_then_write() -> None:
        try:
            with store.write() as db:
                count = db.conn.execute("SELECT COUNT(*) FROM settings").fetchone()[0]
                db.conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('second', ?)",
                    (str(count),),
                )
            outcome.put("committed")
        except Exception as error:
            outcome.put(repr(error))

    thread = threading.Thread(target=read_then_write)
    thread.start()
    wait_for(lambda: store.busy_retries >= 1, timeout=10, what="the write to retry")
    other.execute("COMMIT")
    thread.join(30)

    assert outcome.get(timeout=1) == "committed"
    rows = store.db.conn.execute("SELECT key, value FROM settings ORDER BY key")
    # The read inside the write saw the other connection's committed row.
    assert rows.fetchall() == [("first", "1"), ("second", "1")]
    other.close()
    store.close()


def test_busy_beyond_timeout_is_retried_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path, busy_timeout_ms=10, write_attempts=3)
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")

    with pytest.raises(StoreBusyError) as raised, store.write():
        pass

    assert raised.value.attempts == 3
    assert raised.value.path == str(path)
    assert str(path) in str(raised.value)
    # Every attempt that met a lock is counted, the last one included.
    assert store.busy_retries == 3
    other.execute("ROLLBACK")
    other.close()
    store.close()


def test_write_after_busy_error_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = Store(path, busy_timeout_ms=10, write_attempts=2)
    other = connect(path)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusyError), store.write():
        pass
    other.execute("ROLLBACK")

    with store.write() as db:
        db.conn.execute("INSERT INTO settings (key, value) VALUES ('after', '1')")

    value = store.db.conn.execute("SELECT value FROM settings WHERE key = 'after'")
    assert value.fetchone() == ("1",)
    other.close()
    store.close()


def test_failed_write_rolls_back(store: Store) -> None:
    with pytest.raises(ZeroDivisionError), store.write() as db:
        db.conn.execute("INSERT INTO settings (key, value) VALUES ('lost', '1')")
        1 / 0  # noqa: B018

    count = store.db.conn.execute("SELECT COUNT(*) FROM settings").fetchone()[0]
    assert count == 0
    assert store.db.conn.in_transaction is False


def test_failed_commit_rolls_back(store: Store) -> None:
    # A deferred foreign key fails at COMMIT and leaves the transaction
    # open, as a full disk can: the store must roll it back.
    store.db.conn.execute("PRAGMA foreign_keys = ON")
    store.db.conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.db.conn.execute(
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id) "
        "DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises(sqlite3.IntegrityError), store.write() as db:
        db.conn.execute("INSERT INTO child (parent_id) VALUES (42)")

    assert store.db.conn.in_transaction is False
    with store.write() as db:
        db.conn.execute("INSERT INTO settings (key, value) VALUES ('after', '1')")
    assert store.db.conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0


def test_nested_write_is_rejected(store: Store) -> None:
    with (
        store.write(),
        pytest.raises(RuntimeError, match="does not nest"),
        store.write(),
    ):
        pass
