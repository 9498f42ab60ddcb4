"""console.toml, --agent options, agent URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.config import (
    AgentEntry,
    agents_from_options,
    check_unique_names,
    check_url,
    load_console_config,
    ssh_target,
)
from console.errors import ConsoleConfigError


def test_console_toml_lists_agents(tmp_path: Path):
    path = tmp_path / "console.toml"
    path.write_text(
        """
[[agents]]
name = "gpu-a"
url = "https://gpu-a.lab:7070/"
token_file = "tokens/gpu-a"
ca_file = "ca.pem"

[[agents]]
url = "ssh://ops@gpu-b/7071"
"""
    )

    first, second = load_console_config(path)

    assert first == AgentEntry(
        "gpu-a",
        "https://gpu-a.lab:7070",
        (tmp_path / "tokens" / "gpu-a").resolve(),
        (tmp_path / "ca.pem").resolve(),
    )
    assert (second.name, second.url) == ("gpu-b", "ssh://ops@gpu-b/7071")


def test_missing_console_toml_means_no_agents(tmp_path: Path):
    assert load_console_config(tmp_path / "absent.toml") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[agents]]\nname = 'a'\n", "the key 'url' is missing"),
        ("[[agents]]\nurl = 'http://a'\ncolour = 'red'\n", "unknown key(s) ['colour']"),
        ("[agent]\nurl = 'http://a'\n", "unknown key(s) ['agent']"),
        ("[[agents]]\nurl = 'ftp://a'\n", "is not an agent URL"),
        ("[[agents\n", "is not valid TOML"),
    ],
)
def test_invalid_console_toml_is_named(tmp_path: Path, text: str, message: str):
    path = tmp_path / "console.toml"
    path.write_text(text)

    with pytest.raises(ConsoleConfigError) as raised:
        load_console_config(path)

    assert message in str(raised.value)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gpu-a:7070", "is not an agent URL"),
        ("http://gpu-a:99999", "has an invalid port"),
        ("http://gpu-a:7070/api/v1", "has a path"),
        ("ssh://ops@gpu-a/http", "must be the agent's port"),
    ],
)
def test_invalid_agent_url(url: str, message: str):
    with pytest.raises(ConsoleConfigError) as raised:
        check_url(url, "--agent")

    assert message in str(raised.value)


def test_ssh_url_path_is_agent_port():
    target = ssh_target("ssh://ops@gpu-a:2222/7171")

    assert (target.user, target.host, target.ssh_port, target.agent_port) == (
        "ops",
        "gpu-a",
        2222,
        7171,
    )


def test_agent_options_pair_token_files(tmp_path: Path):
    token_a, token_b = tmp_path / "a", tmp_path / "b"

    entries = agents_from_options(
        ("http://a:1", "https://b:2"), (token_a, token_b), ca_file=tmp_path / "ca"
    )

    assert [(e.name, e.token_file, e.ca_file) for e in entries] == [
        ("a:1", token_a, None),
        ("b:2", token_b, tmp_path / "ca"),
    ]


def test_agent_options_need_one_token_file_each(tmp_path: Path):
    with pytest.raises(ConsoleConfigError) as raised:
        agents_from_options(("http://a:1", "http://b:2"), (tmp_path / "a",))

    assert "one --token-file per --agent" in str(raised.value)


def test_duplicate_agent_names_are_rejected():
    entries = [AgentEntry("a", "http://a:1"), AgentEntry("a", "http://a:2")]

    with pytest.raises(ConsoleConfigError) as raised:
        check_unique_names(entries)

    assert "Two agents are named 'a'" in str(raised.value)


def test_unreadable_token_file_is_named(tmp_path: Path):
    entry = AgentEntry("a", "http://a:1", token_file=tmp_path / "missing")

    with pytest.raises(ConsoleConfigError) as raised:
        entry.read_token()

    assert "Cannot read the token file" in str(raised.value)
    assert "missing" in str(raised.value)
