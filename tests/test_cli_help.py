"""`rigdeck-agent --help` on every command, and units on every numeric option."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from agent.cli import cli

# Words that state the unit of a number in help text.
UNIT = re.compile(
    r"\b(seconds?|milliseconds?|ms|bytes?|KiB|MiB|GiB|hours?|days?|minutes?|percent|"
    r"ratio|watts|hertz|per second|requests?|rows?|points?|attempts?)\b"
)
# A range stated in words ("1 to 1000") or by click ("0<=x<=65535").
RANGE = re.compile(r"\d+\s*(to|\.\.)\s*\d+|<=x<=|x>=|x<=")
NUMERIC_TYPES = (click.types.IntParamType, click.types.FloatParamType)


def _commands(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, child in sorted(command.commands.items()):
            yield from _commands(child, (*path, name))


COMMANDS = list(_commands(cli))
COMMAND_IDS = [" ".join(path) or "rigdeck-agent" for path, _ in COMMANDS]


def test_tree_has_every_documented_command() -> None:
    paths = {" ".join(path) for path, _ in COMMANDS}

    for expected in (
        "init",
        "run",
        "token",
        "token create",
        "token list",
        "token revoke",
        "audit",
        "audit verify",
    ):
        assert expected in paths


@pytest.mark.parametrize("path, command", COMMANDS, ids=COMMAND_IDS)
def test_help_exits_0_with_description(
    path: tuple[str, ...], command: click.Command
) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="rigdeck-agent")

    assert result.exit_code == 0, result.output
    assert command.help, "the command has no docstring"
    first_paragraph = " ".join(command.help.split("\n\n")[0].split())
    assert first_paragraph in " ".join(result.output.split())
    assert result.output.startswith(f"Usage: rigdeck-agent {' '.join(path)}".rstrip())


@pytest.mark.parametrize("path, command", COMMANDS, ids=COMMAND_IDS)
def test_every_option_has_help(path: tuple[str, ...], command: click.Command) -> None:
    context = click.Context(command, info_name="rigdeck-agent")

    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            record = param.get_help_record(context)
            assert record is not None
            assert record[1].strip(), f"option {param.opts} has no help text"


@pytest.mark.parametrize("path, command", COMMANDS, ids=COMMAND_IDS)
def test_numeric_options_state_unit_or_range(
    path: tuple[str, ...], command: click.Command
) -> None:
    context = click.Context(command, info_name="rigdeck-agent")

    for param in command.params:
        if not isinstance(param, click.Option) or not isinstance(
            param.type, NUMERIC_TYPES
        ):
            continue
        _, help_text = param.get_help_record(context)
        assert UNIT.search(help_text) or RANGE.search(help_text), (
            f"option {param.opts} takes a number but its help states no unit or range: "
            f"{help_text!r}"
        )


def test_numeric_option_check_finds_port() -> None:
    numeric = [
        (" ".join(path), param.name)
        for path, command in COMMANDS
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.type, NUMERIC_TYPES)
    ]

    assert ("init", "port") in numeric


def test_installed_script_prints_help() -> None:
    script = Path(sys.executable).with_name("rigdeck-agent")

    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: rigdeck-agent [OPTIONS] COMMAND [ARGS]...")
    assert "The rigdeck agent: trains, serves and watches models" in result.stdout
