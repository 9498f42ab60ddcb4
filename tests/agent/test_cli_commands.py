"""rigdeck-agent init and token create: files they write and what they reject."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

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
