"""The ``rigdeck`` command: help, option errors, and a lost terminal (SIGHUP)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_ssh import install_fake_ssh
from loopback_agent import LoopbackAgent

from console.cli import cli

RIGDECK = [sys.executable, "-m", "console.cli"]


def test_help_lists_options():
    result = CliRunner().invoke(cli, ["--help"], prog_name="rigdeck")

    assert result.exit_code == 0
    for option in (
        "--config",
        "--agent",
        "--token-file",
        "--ca-file",
        "--readonly",
        "--log-file",
        "demo",
    ):
        assert option in result.output


def test_no_agents_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(
        cli, ["--config", str(tmp_path / "none.toml")], prog_name="rigdeck"
    )

    assert result.exit_code == 2
    assert "No agents to watch" in result.output


def test_token_file_count_must_match(tmp_path: Path):
    token = tmp_path / "t"
    token.write_text("x")

    result = CliRunner().invoke(
        cli,
        [
            "--config",
            str(tmp_path / "none.toml"),
            "--agent",
            "http://a:1",
            "--agent",
            "http://b:2",
            "--token-file",
            str(token),
        ],
        prog_name="rigdeck",
    )

    assert result.exit_code != 0
    assert "one --token-file per --agent" in str(result.exception or result.output)


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if needle in seen:
                return seen
    raise AssertionError(f"{needle!r} did not appear; got {seen[-500:]!r}")


@pytest.mark.slow
def test_sighup_ends_console_quietly_and_closes_tunnels(tmp_path: Path):
    agent = LoopbackAgent()
    ssh_log = tmp_path / "ssh.log"
    bin_directory = install_fake_ssh(tmp_path / "bin")
    token = tmp_path / "token"
    token.write_text("any\n")
    agent_port = agent.url.rsplit(":", 1)[1]
    env = {
        **os.environ,
        "PATH": f"{bin_directory}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SSH_LOG": str(ssh_log),
        "TERM": "xterm-256color",
        "COLORTERM": "",
    }
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [
            *RIGDECK,
            "--config",
            str(tmp_path / "none.toml"),
            "--agent",
            agent.url,
            "--token-file",
            str(token),
            "--agent",
            f"ssh://ops@gpu-b.example/{agent_port}",
            "--token-file",
            str(token),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        _read_until(master, b"fleet", timeout=30)
        deadline = time.monotonic() + 20
        while not ssh_log.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        ssh_pid = json.loads(ssh_log.read_text().splitlines()[0])["pid"]

        os.close(master)  # the terminal goes away...
        process.send_signal(signal.SIGHUP)  # ...and the kernel sends SIGHUP
        returncode = process.wait(timeout=15)

        assert returncode == 0
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(ssh_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"the ssh tunnel {ssh_pid} outlived the console")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        agent.close()
