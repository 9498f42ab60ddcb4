"""rigdeck-agent init and token commands: the files they write and their errors."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import tomllib
from pathlib import Path

import pytest
from harness import agent_cli


def _init(directory: Path, *args: str):
    from click.testing import CliRunner

    from agent.cli import cli

    return CliRunner().invoke(cli, ["init", str(directory), "--port", "0", *args])


def test_init_escapes_quotes_in_region(tmp_path: Path) -> None:
    result = _init(tmp_path / "host", "--region", 'eu"west', "--name", "a")

    config = tomllib.loads((tmp_path / "host" / "agent.toml").read_text())
    assert result.exit_code == 0
    assert config["agent"]["region"] == 'eu"west'
    assert config["agent"]["name"] == "a"


def test_token_output_to_existing_file_is_private(tmp_path: Path) -> None:
    _init(tmp_path / "host")
    config = tmp_path / "host" / "agent.toml"
    token_file = tmp_path / "viewer.token"
    token_file.write_text("old\n")
    token_file.chmod(0o644)

    agent_cli(
        config,
        "token",
        "create",
        "reader",
        "--role",
        "viewer",
        "--output",
        str(token_file),
    )

    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().startswith("rdk_")


def test_token_output_unwritable_creates_no_token(tmp_path: Path) -> None:
    _init(tmp_path / "host")
    config = tmp_path / "host" / "agent.toml"

    result = agent_cli(
        config,
        "token",
        "create",
        "reader",
        "--role",
        "viewer",
        "--output",
        str(tmp_path / "missing" / "viewer.token"),
        check=False,
    )

    assert result.returncode == 1
    assert "No such file or directory. No token was created." in result.stderr
    assert not (tmp_path / "host" / "data" / "store.db").exists()


def test_audit_verify_without_store_fails(tmp_path: Path) -> None:
    _init(tmp_path / "host")
    config = tmp_path / "host" / "agent.toml"

    result = agent_cli(config, "audit", "verify", check=False)

    assert result.returncode == 1
    assert f"No store at {tmp_path / 'host' / 'data' / 'store.db'}" in result.stderr
    assert not (tmp_path / "host" / "data" / "store.db").exists()


# A full disk. SQLite reports a write that fails with ENOSPC as SQLITE_FULL
# ("database or disk is full"), so these fakes raise that at the write.


def _invoke(*args: str):
    from click.testing import CliRunner

    from agent.cli import cli

    return CliRunner().invoke(cli, list(args), prog_name="rigdeck-agent")


def _host_with_token(tmp_path: Path) -> Path:
    _init(tmp_path / "host")
    config = tmp_path / "host" / "agent.toml"
    created = _invoke(
        "token", "create", "first", "--role", "admin", "--config", str(config)
    )
    assert created.exit_code == 0, created.output
    return config


def _rows(store_path: Path, query: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(store_path)) as conn:
        return conn.execute(query).fetchall()


def _fail_audit_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    from store import audit

    def append_entry(db, **fields) -> int:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(audit, "append_entry", append_entry)


def _fail_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    # SQLite syncs through its own C code, so only the token file's
    # os.fsync fails.
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def test_token_create_on_full_disk_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _host_with_token(tmp_path)
    store_path = tmp_path / "host" / "data" / "store.db"
    _fail_audit_writes(monkeypatch)

    result = _invoke(
        "token", "create", "reader", "--role", "viewer", "--config", str(config)
    )

    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"Error: Cannot write to the store {store_path}: database or disk is full."
    )
    assert f"df -h {store_path.parent}" in result.stderr
    assert "then run the command again." in result.stderr
    assert _rows(store_path, "SELECT name FROM tokens") == [("first",)]
    assert _rows(store_path, "SELECT action FROM audit_entries") == [("token.create",)]


def test_token_create_on_full_disk_removes_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _host_with_token(tmp_path)
    token_file = tmp_path / "reader.token"
    _fail_audit_writes(monkeypatch)

    result = _invoke(
        "token", "create", "reader", "--role", "viewer",
        "--output", str(token_file), "--config", str(config),
    )  # fmt: skip

    assert result.exit_code == 1
    assert "database or disk is full" in result.stderr
    assert not token_file.exists()


def test_token_file_on_full_disk_rolls_back_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _host_with_token(tmp_path)
    store_path = tmp_path / "host" / "data" / "store.db"
    token_file = tmp_path / "reader.token"
    _fail_fsync(monkeypatch)

    result = _invoke(
        "token", "create", "reader", "--role", "viewer",
        "--output", str(token_file), "--config", str(config),
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Cannot write the token to {token_file}: No space left on device. "
        "No token was created."
    )
    assert f"df -h {tmp_path}" in result.stderr
    assert not token_file.exists()
    assert _rows(store_path, "SELECT name FROM tokens") == [("first",)]
    assert _rows(store_path, "SELECT count(*) FROM audit_entries") == [(1,)]


def test_existing_token_file_emptied_on_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _host_with_token(tmp_path)
    token_file = tmp_path / "reader.token"
    token_file.write_text("old\n")
    _fail_fsync(monkeypatch)

    result = _invoke(
        "token", "create", "reader", "--role", "viewer",
        "--output", str(token_file), "--config", str(config),
    )  # fmt: skip

    assert result.exit_code == 1
    # The file held a secret that matches no token.
    assert token_file.read_text() == ""


def test_taken_token_name_keeps_output_file(tmp_path: Path) -> None:
    config = _host_with_token(tmp_path)
    token_file = tmp_path / "first.token"
    token_file.write_text("old\n")

    result = _invoke(
        "token", "create", "first", "--role", "viewer",
        "--output", str(token_file), "--config", str(config),
    )  # fmt: skip

    assert result.exit_code == 1
    assert "A token named 'first' exists" in result.stderr
    assert token_file.read_text() == "old\n"


def test_token_revoke_on_full_disk_keeps_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _host_with_token(tmp_path)
    store_path = tmp_path / "host" / "data" / "store.db"
    _fail_audit_writes(monkeypatch)

    result = _invoke("token", "revoke", "first", "--config", str(config))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"Error: Cannot write to the store {store_path}: database or disk is full."
    )
    assert _rows(store_path, "SELECT revoked_at FROM tokens") == [(None,)]
    assert _rows(store_path, "SELECT count(*) FROM audit_entries") == [(1,)]


def test_new_store_on_full_disk_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import store._store

    # A one-page limit makes the real SQLite fail the schema migration
    # with SQLITE_FULL, as a full disk would.
    limited = (*store._store._PRAGMAS, "PRAGMA max_page_count = 1")
    monkeypatch.setattr(store._store, "_PRAGMAS", limited)
    _init(tmp_path / "host")
    config = tmp_path / "host" / "agent.toml"
    store_path = tmp_path / "host" / "data" / "store.db"

    result = _invoke(
        "token", "create", "reader", "--role", "viewer", "--config", str(config)
    )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        f"Error: Cannot write to the store {store_path}: database or disk is full."
    )
    assert "Inspect the file" not in result.stderr
    tables = "SELECT name FROM sqlite_master WHERE name = 'tokens'"
    assert _rows(store_path, tables) == []


def _fail_audit_writes_with(monkeypatch: pytest.MonkeyPatch, code: str, text: str):
    from store import audit

    def append_entry(db, **fields) -> int:
        error = sqlite3.OperationalError(text)
        error.sqlite_errorname = code
        raise error

    monkeypatch.setattr(audit, "append_entry", append_entry)


@pytest.mark.parametrize(
    ("code", "text", "fix"),
    [
        (
            "SQLITE_READONLY",
            "attempt to write a readonly database",
            "Run the command as the user that owns",
        ),
        ("SQLITE_CANTOPEN", "unable to open database file", "exists and that"),
        ("SQLITE_IOERR_SHMSIZE", "disk I/O error", "Check the file system"),
    ],
)
def test_store_file_errors_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, text: str, fix: str
) -> None:
    config = _host_with_token(tmp_path)
    store_path = tmp_path / "host" / "data" / "store.db"
    _fail_audit_writes_with(monkeypatch, code, text)

    result = _invoke("token", "revoke", "first", "--config", str(config))

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"Error: Cannot use the store {store_path}: {text} ({code})."
    )
    assert fix in result.stderr
    assert _rows(store_path, "SELECT revoked_at FROM tokens") == [(None,)]


def test_io_error_when_full_reads_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no block left SQLite cannot create the -shm file and reports an
    # I/O error, not SQLITE_FULL.
    config = _host_with_token(tmp_path)
    store_path = tmp_path / "host" / "data" / "store.db"
    _fail_audit_writes_with(monkeypatch, "SQLITE_IOERR_SHMSIZE", "disk I/O error")
    real_statvfs = os.statvfs

    class Full:
        def __init__(self, real) -> None:
            self.f_bavail = 0
            self.real = real

    monkeypatch.setattr(os, "statvfs", lambda path: Full(real_statvfs(path)))

    result = _invoke("token", "revoke", "first", "--config", str(config))

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Cannot write to the store {store_path}: disk I/O error."
    )
    assert f"df -h {store_path.parent}" in result.stderr


def test_init_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def replace(source, target) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(os, "replace", replace)

    result = _init(tmp_path / "host")

    assert result.exit_code == 1
    assert "No space left on device" in result.output
    assert sorted(p.name for p in (tmp_path / "host").iterdir()) == ["data"]
