"""Bearer tokens in the store: shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import Store, tokens


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "store.db")
    yield store
    store.close()


def test_secret_is_stored_only_as_sha256(store: Store) -> None:
    with store.write() as db:
        secret, row = tokens.create_token(db, "ci", "operator")

    stored = store.db.conn.execute("SELECT * FROM tokens").fetchall()
    file_bytes = (
        store.path.read_bytes() + store.path.with_name("store.db-wal").read_bytes()
    )

    assert secret.startswith(tokens.TOKEN_PREFIX)
    assert secret not in repr(stored)
    assert secret.encode() not in file_bytes
    assert hashlib.sha256(secret.encode()).hexdigest() in repr(stored)
    assert "token_sha256" not in row
    assert row["name"] == "ci"
    assert row["role"] == "operator"


def test_find_active_matches_secret(store: Store) -> None:
    with store.write() as db:
        secret, _ = tokens.create_token(db, "ci", "viewer")

    found = tokens.find_active(store.db, secret)

    assert found["name"] == "ci"
    assert "token_sha256" not in found
    assert tokens.find_active(store.db, secret + "x") is None


def test_revoked_token_is_not_active(store: Store) -> None:
    with store.write() as db:
        secret, _ = tokens.create_token(db, "ci", "viewer")
    with store.write() as db:
        tokens.revoke_token(db, "ci")

    assert tokens.find_active(store.db, secret) is None
    assert tokens.get_token(store.db, "ci")["revoked_at"] is not None


def test_two_tokens_never_share_a_secret(store: Store) -> None:
    with store.write() as db:
        first, _ = tokens.create_token(db, "a", "viewer")
        second, _ = tokens.create_token(db, "b", "viewer")

    assert first != second
    # 32 random bytes, base64url-encoded without padding.
    assert len(first) == len(tokens.TOKEN_PREFIX) + 43


def test_list_omits_hashes(store: Store) -> None:
    with store.write() as db:
        tokens.create_token(db, "b", "admin")
        tokens.create_token(db, "a", "viewer")

    rows = tokens.list_tokens(store.db)

    assert [row["name"] for row in rows] == ["a", "b"]
    assert all("token_sha256" not in row for row in rows)
