"""The hash-chained audit log: appends, and the tampering that verify_chain finds.

A rewrite that also recomputes every later hash and the log head is not
detected, because the hashes use no secret key.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store, audit


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    for index in range(1, 6):
        with store.write() as db:
            audit.append_entry(
                db,
                actor="alice",
                action="alert.acknowledge",
                target=f"alert/{index}",
                reason="seen",
                before={"acknowledged_by": None},
                after={"acknowledged_by": "alice"},
            )
    yield store
    store.close()


def _tamper(store: Store, sql: str, *params: object) -> None:
    # A separate connection, as an editor of the file would use.
    with sqlite3.connect(store.path) as conn:
        conn.execute(sql, params)


def test_intact_chain_verifies(store: Store) -> None:
    check = audit.verify_chain(store.db)

    assert check.ok is True
    assert check.checked == 5
    assert check.first_bad_id is None
    assert check.message == "The audit chain of 5 entries verifies."


def test_empty_log_verifies(tmp_path: Path) -> None:
    store = Store(tmp_path / "store.db")

    check = audit.verify_chain(store.db)

    assert check.ok is True
    assert check.checked == 0
    store.close()


def test_entries_link_to_previous_hash(store: Store) -> None:
    rows = list(
        store.db.query("SELECT id, prev_hash, hash FROM audit_entries ORDER BY id")
    )

    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == audit.GENESIS_HASH
    for previous, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == previous["hash"]
    head = store.db.conn.execute("SELECT last_id, last_hash FROM audit_head").fetchone()
    assert head == (5, rows[-1]["hash"])


def test_append_outside_transaction_is_rejected(store: Store) -> None:
    with pytest.raises(RuntimeError, match="inside Store.write"):
        audit.append_entry(store.db, actor="alice", action="x", target="y")


def test_entry_round_trips_before_and_after(store: Store) -> None:
    entry = audit.list_entries(store.db, limit=1)[0]

    assert entry["actor"] == "alice"
    assert entry["action"] == "alert.acknowledge"
    assert entry["target"] == "alert/1"
    assert entry["reason"] == "seen"
    assert entry["before"] == {"acknowledged_by": None}
    assert entry["after"] == {"acknowledged_by": "alice"}


@pytest.mark.parametrize(
    "column, value",
    [
        ("actor", "mallory"),
        ("action", "token.revoke"),
        ("target", "alert/99"),
        ("reason", "no reason"),
        ("before_json", '{"acknowledged_by":"bob"}'),
        ("after_json", None),
        ("ts", 0.0),
    ],
)
def test_edited_field_names_that_entry(
    store: Store, column: str, value: object
) -> None:
    _tamper(store, f"UPDATE audit_entries SET {column} = ? WHERE id = 3", value)

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 3
    assert check.message.startswith("Audit entry 3 was modified")


def test_edited_prev_hash_names_that_entry(store: Store) -> None:
    _tamper(store, "UPDATE audit_entries SET prev_hash = ? WHERE id = 4", "f" * 64)

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 4
    assert check.message.startswith("Audit entry 4 does not link to entry 3")


def test_deleted_middle_entry_is_named(store: Store) -> None:
    _tamper(store, "DELETE FROM audit_entries WHERE id = 3")

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 3
    assert check.checked == 2
    assert check.message.startswith("Audit entry 3 is missing")


def test_deleted_first_entry_is_named(store: Store) -> None:
    _tamper(store, "DELETE FROM audit_entries WHERE id = 1")

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 1


def test_deleted_last_entry_is_detected(store: Store) -> None:
    _tamper(store, "DELETE FROM audit_entries WHERE id = 5")

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 5
    assert check.checked == 4
    assert check.message.startswith("Audit entries after 4 are missing")


def test_deleted_every_entry_is_detected(store: Store) -> None:
    _tamper(store, "DELETE FROM audit_entries")

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 1


def test_append_after_entries_continues_chain(store: Store) -> None:
    with store.write() as db:
        entry_id = audit.append_entry(db, actor="bob", action="x", target="y")

    assert entry_id == 6
    assert audit.verify_chain(store.db).ok is True


def test_list_filters_by_actor_and_cursor(store: Store) -> None:
    with store.write() as db:
        audit.append_entry(db, actor="bob", action="x", target="y")

    by_bob = audit.list_entries(store.db, actor="bob")
    after_three = audit.list_entries(store.db, after_id=3, limit=2)

    assert [entry["id"] for entry in by_bob] == [6]
    assert [entry["id"] for entry in after_three] == [4, 5]


def _forge(store: Store, entry_id: int, **changes: object) -> dict:
    """Return an entry with ``changes`` applied and its hash recomputed to match."""
    with sqlite3.connect(store.path) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(
            conn.execute(
                "SELECT * FROM audit_entries WHERE id = ?", (entry_id,)
            ).fetchone()
        )
    row.update(changes)
    row["hash"] = audit._entry_hash(row)
    return row


def test_rewritten_last_entry_is_named(store: Store) -> None:
    forged = _forge(store, 5, actor="mallory")
    _tamper(
        store,
        "UPDATE audit_entries SET actor = ?, hash = ? WHERE id = 5",
        forged["actor"],
        forged["hash"],
    )

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 5
    assert check.message == (
        "Audit entry 5 was modified: its hash does not match the one recorded in "
        "the log head."
    )


def test_entry_added_without_head_is_named(store: Store) -> None:
    last = _forge(store, 5)
    forged = _forge(store, 5, id=6, actor="mallory", prev_hash=last["hash"])
    columns = ", ".join(forged)
    placeholders = ", ".join("?" * len(forged))
    _tamper(
        store,
        f"INSERT INTO audit_entries ({columns}) VALUES ({placeholders})",
        *forged.values(),
    )

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 6
    assert check.checked == 6
    assert check.message == (
        "Audit entry 6 was added without the log head, which records entry 5 as "
        "the newest."
    )


def test_deleted_head_and_last_entry_are_detected(store: Store) -> None:
    _tamper(store, "DELETE FROM audit_entries WHERE id = 5")
    _tamper(store, "DELETE FROM audit_head")

    check = audit.verify_chain(store.db)

    assert check.ok is False
    assert check.first_bad_id == 4
    assert check.message.startswith("The audit log head is missing although 4 entries")
