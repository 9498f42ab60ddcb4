"""agent.toml validation: each error names the file and the key, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from harness import agent_cli

from agent.cli import cli
from agent.config import load_config
from agent.errors import ConfigError

VALID = """
[agent]
name = "cfg-test"
data_dir = "data"

[api]
port = 0

[telemetry]
interval_seconds = 2.0
"""

# (case id, agent.toml text, text the error must contain)
INVALID_CONFIGS = [
    (
        "unknown key",
        VALID.replace("port = 0", "prot = 0"),
        "api.prot: unknown key",
    ),
    (
        "wrong type",
        VALID.replace("port = 0", 'port = "seventy"'),
        "api.port: Input should be a valid integer",
    ),
    (
        "negative interval",
        VALID.replace("interval_seconds = 2.0", "interval_seconds = -1"),
        "telemetry.interval_seconds: Input should be greater than 0 (got -1)",
    ),
    (
        "non-loopback host without TLS",
        VALID.replace("port = 0", 'port = 0\nhost = "0.0.0.0"'),
        "api: host '0.0.0.0' is not loopback: set tls_cert and tls_key",
    ),
    (
        "tls_cert without tls_key",
        VALID.replace("port = 0", 'port = 0\ntls_cert = "agent.crt"'),
        "api: tls_cert and tls_key must be set together",
    ),
    (
        "invalid TOML",
        VALID.replace("port = 0", "port 0"),
        "not valid TOML: Expected '=' after a key in a key/value pair (at line 7",
    ),
]


@pytest.mark.parametrize(
    "text, expected",
    [case[1:] for case in INVALID_CONFIGS],
    ids=[case[0] for case in INVALID_CONFIGS],
)
def test_invalid_config_names_key_and_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(text)

    result = agent_cli(config, "run", check=False)

    assert result.returncode == 1
    assert f"Invalid configuration in {config}" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists()
    assert config.read_text() == text


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "absent" / "agent.toml"

    result = agent_cli(config, "run", check=False)

    assert result.returncode == 1
    assert f"Invalid configuration in {config}" in result.stderr
    assert "the file does not exist; create one with `rigdeck-agent init DIR`" in (
        result.stderr
    )
    assert not (tmp_path / "absent").exists()


def test_token_command_with_invalid_config_creates_nothing(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(VALID.replace("port = 0", "prot = 0"))

    result = agent_cli(config, "token", "create", "ci", "--role", "viewer", check=False)

    assert result.returncode == 1
    assert "api.prot: unknown key" in result.stderr
    assert not (tmp_path / "data").exists()


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        VALID.replace("port = 0", "port = 70000\nmetrics = true").replace(
            "interval_seconds = 2.0", "interval_seconds = 0"
        )
    )

    with pytest.raises(ConfigError) as raised:
        load_config(config)

    problems = raised.value.problems
    assert len(problems) == 3
    assert problems[0].startswith(
        "api.port: Input should be less than or equal to 65535"
    )
    assert problems[1].startswith("api.metrics: unknown key")
    assert problems[2].startswith(
        "telemetry.interval_seconds: Input should be greater than 0"
    )
    assert raised.value.path == str(config)


def test_relative_paths_resolve_against_config_dir(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "agent.toml"
    (tmp_path / "etc" / "tls").mkdir(parents=True)
    (tmp_path / "etc" / "tls" / "a.crt").write_text("certificate")
    (tmp_path / "etc" / "tls" / "a.key").write_text("key")
    config.write_text(
        VALID.replace(
            "port = 0", 'port = 0\ntls_cert = "tls/a.crt"\ntls_key = "tls/a.key"'
        )
    )

    loaded = load_config(config)

    assert loaded.data_dir == tmp_path / "etc" / "data"
    assert loaded.store_path == tmp_path / "etc" / "data" / "store.db"
    assert loaded.api.tls_cert == tmp_path / "etc" / "tls" / "a.crt"
    assert loaded.api.tls_key == tmp_path / "etc" / "tls" / "a.key"


def test_insecure_flag_allows_non_loopback_host(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        VALID.replace("port = 0", 'port = 0\nhost = "0.0.0.0"\ninsecure = true')
    )

    loaded = load_config(config)

    assert loaded.api.host == "0.0.0.0"
    assert loaded.api.insecure is True


def test_empty_config_uses_defaults(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("")

    loaded = load_config(config)

    assert loaded.api.host == "127.0.0.1"
    assert loaded.api.port == 7070
    assert loaded.api.max_body_bytes == 1_048_576
    assert loaded.telemetry.interval_seconds == 2.0
    assert loaded.store.busy_timeout_ms == 5000
    assert loaded.data_dir == tmp_path / "data"


def test_init_writes_config_that_loads(tmp_path: Path) -> None:
    directory = tmp_path / "host"

    result = CliRunner().invoke(cli, ["init", str(directory), "--port", "0"])
    loaded = load_config(directory / "agent.toml")

    assert result.exit_code == 0, result.output
    assert loaded.api.port == 0
    assert (directory / "data").is_dir()


def test_init_refuses_to_overwrite_config(tmp_path: Path) -> None:
    directory = tmp_path / "host"
    CliRunner().invoke(cli, ["init", str(directory)])
    before = (directory / "agent.toml").read_text()

    result = CliRunner().invoke(cli, ["init", str(directory), "--port", "0"])

    assert result.exit_code == 1
    assert "exists; pass --force to overwrite it" in result.output
    assert (directory / "agent.toml").read_text() == before


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        VALID.replace("port = 0", 'port = 0\ntls_cert = "a.crt"\ntls_key = "a.key"')
    )

    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert f"api.tls_cert: the file {tmp_path / 'a.crt'} does not exist" in str(
        raised.value
    )
    assert f"api.tls_key: the file {tmp_path / 'a.key'} does not exist" in str(
        raised.value
    )
    assert not (tmp_path / "data").exists()


def test_non_utf8_config_is_named(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_bytes(b'[agent]\nname = "caf\xe9"\n')

    with pytest.raises(ConfigError) as raised:
        load_config(config)

    assert "not UTF-8 text (byte 19); save it as UTF-8" in str(raised.value)
