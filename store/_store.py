"""One way to open the store: the SQLite file every part of the agent uses."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from store._schema import MIGRATIONS
from store.errors import SchemaError, StoreBusyError

logger = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_WRITE_ATTEMPTS = 5

# synchronous=FULL: in WAL mode, NORMAL survives a killed process but may
# lose the last committed transactions on power loss, and an approval or
# audit entry that the API has acknowledged must not disappear. FULL adds
# one fsync of the WAL per commit; telemetry is written in batches, so
# the cost stays at a few fsyncs a minute on an idle agent.
_PRAGMAS = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)


def connect(
    path: str | Path, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> sqlite3.Connection:
    """Open a raw connection with WAL, the busy timeout and foreign keys set.

    The connection is in autocommit mode (``isolation_level=None``) so that
    transactions are started explicitly, with ``BEGIN IMMEDIATE`` for writes.
    """
    conn = sqlite3.connect(
        str(path),
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    return conn


class Store:
    """The agent's SQLite database, one connection per thread.

    Args:
        path: the database file; created with its schema if missing.
        busy_timeout_ms: how long one attempt waits for a lock, in
            milliseconds. Default 5000.
        write_attempts: how many times ``write()`` tries ``BEGIN IMMEDIATE``
            before raising ``StoreBusyError``. Default 5.
    """

    def __init__(
        self,
        path: str | Path,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        write_attempts: int = DEFAULT_WRITE_ATTEMPTS,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.write_attempts = write_attempts
        self.busy_retries = 0
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.migrate()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, wrapped by sqlite-utils."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = connect(self.path, self.busy_timeout_ms)
            with self._all_lock:
                self._all.append(conn)
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite_utils.Database]:
        """Run a write transaction that starts with ``BEGIN IMMEDIATE``.

        A deferred transaction that reads and then writes cannot upgrade
        its lock while another connection writes, and SQLite then returns
        BUSY at once whatever the timeout. Taking the write lock up front
        makes the busy timeout apply. A BUSY that outlasts the timeout is
        retried and counted in ``busy_retries``; the last one raises.
        """
        db = self.db
        if db.conn.in_transaction:
            raise RuntimeError("Store.write() does not nest; a transaction is open.")
        self._begin_immediate(db.conn)
        try:
            yield db
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            # A COMMIT that fails (a full disk shows up here in WAL mode) can
            # leave the transaction open, and the next write would not start.
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        for attempt in range(1, self.write_attempts + 1):
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
                self.busy_retries += 1
                logger.warning(
                    "store %s busy on attempt %s of %s",
                    self.path,
                    attempt,
                    self.write_attempts,
                )
                if attempt < self.write_attempts:
                    time.sleep(0.05 * attempt)
        raise StoreBusyError(str(self.path), self.write_attempts)

    def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        conn = self.db.conn
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise SchemaError(
                f"The store {self.path} has schema version {current}, newer than "
                f"this rigdeck knows ({len(MIGRATIONS)}). Upgrade rigdeck, or "
                "restore a backup made by this version."
            )
        for number in range(current + 1, len(MIGRATIONS) + 1):
            self._begin_immediate(conn)
            try:
                for statement in _split_statements(MIGRATIONS[number - 1]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
            except sqlite3.Error as error:
                conn.execute("ROLLBACK")
                raise SchemaError(
                    f"Migration {number} of the store {self.path} failed and was "
                    f"rolled back, so the schema stays at version {number - 1}: "
                    f"{error}. Inspect the file with the sqlite3 shell, or restore "
                    "a backup."
                ) from error
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            logger.info("store %s migrated to schema version %s", self.path, number)
        return len(MIGRATIONS)

    def quick_check(self) -> str:
        """Return the result of ``PRAGMA quick_check``: ``"ok"`` when sound."""
        rows = self.db.conn.execute("PRAGMA quick_check").fetchall()
        return "\n".join(row[0] for row in rows)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


def _split_statements(script: str) -> list[str]:
    """Split a migration into statements, so they run inside one transaction.

    ``executescript`` would commit first, which breaks the all-or-nothing
    migration. ``sqlite3.complete_statement`` finds where each ends.
    """
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements
