"""``kill -9`` of a process in the middle of a burst of writes to the store."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO, agent_cli, write_config

from store import Store, audit

ACKNOWLEDGED_BEFORE_KILL = 300

# Each transaction adds an audit entry, a token and telemetry samples, and
# the id is printed only after COMMIT returned: a printed id is a write
# that the store acknowledged.
WRITER = """
import sys, time
from store import Store, audit, telemetry, tokens

store = Store(sys.argv[1])
for index in range(1_000_000):
    with store.write() as db:
        tokens.create_token(db, f"crash-{index}", "viewer")
        entry_id = audit.append_entry(
            db, actor="writer", action="token.create", target=f"token/crash-{index}"
        )
        now = time.time()
        samples = [telemetry.Sample(now, "crash", "", float(i)) for i in range(20)]
        telemetry.insert_samples(db, samples)
    print(entry_id, flush=True)
"""


def _kill_writer_after(path: Path, acknowledged: int) -> list[int]:
    """Run the writer, SIGKILL it mid-burst; return the entry ids it acknowledged."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ids = []
    for line in writer.stdout:
        ids.append(int(line))
        if len(ids) == acknowledged:
            os.kill(writer.pid, signal.SIGKILL)
            break
    writer.wait(30)
    assert writer.returncode == -signal.SIGKILL, writer.stderr.read()
    writer.stdout.close()
    writer.stderr.close()
    return ids


@pytest.mark.slow
def test_kill_during_writes_keeps_acknowledged_entries(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    path = tmp_path / "data" / "store.db"
    path.parent.mkdir()
    Store(path).close()

    acknowledged = _kill_writer_after(path, ACKNOWLEDGED_BEFORE_KILL)

    store = Store(path)
    assert store.quick_check() == "ok"
    stored_ids = {
        row[0] for row in store.db.conn.execute("SELECT id FROM audit_entries")
    }
    assert set(acknowledged) <= stored_ids
    assert len(stored_ids) >= ACKNOWLEDGED_BEFORE_KILL
    check = audit.verify_chain(store.db)
    assert check.ok, check.message
    assert check.checked == len(stored_ids)
    # Each audit entry was committed with its token, or neither was.
    token_count = store.db.conn.execute(
        "SELECT COUNT(*) FROM tokens WHERE name LIKE 'crash-%'"
    ).fetchone()[0]
    assert token_count == len(stored_ids)
    store.close()
    verified = agent_cli(config, "audit", "verify", check=False)
    assert verified.returncode == 0, verified.stderr
    assert f"The audit chain of {len(stored_ids)} entries verifies." in verified.stdout


def test_store_reopens_after_kill_with_open_transaction(tmp_path: Path) -> None:
    # The writer dies holding the write lock, between BEGIN IMMEDIATE and COMMIT.
    path = tmp_path / "store.db"
    Store(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from store import connect; conn = connect(sys.argv[1]); "
            "conn.execute('BEGIN IMMEDIATE'); "
            "conn.execute(\"INSERT INTO settings (key, value) VALUES ('half', '1')\"); "
            "print('locked', flush=True); sys.stdin.read()",
            str(path),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "locked\n"

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(30)
    holder.stdin.close()
    holder.stdout.close()

    store = Store(path, busy_timeout_ms=1000, write_attempts=1)
    assert store.quick_check() == "ok"
    with store.write() as db:
        db.conn.execute("INSERT INTO settings (key, value) VALUES ('after', '1')")
    with sqlite3.connect(path) as conn:
        keys = [row[0] for row in conn.execute("SELECT key FROM settings ORDER BY key")]
    assert keys == ["after"]
    store.close()
