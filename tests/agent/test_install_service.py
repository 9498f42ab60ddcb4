"""rigdeck-agent install-service: the unit it prints or writes, and what it rejects."""

from __future__ import annotations

import getpass
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from harness import write_config

from agent import service_unit
from agent.cli import cli
from agent.service_unit import ServiceUnitError, agent_executable

SCRIPT = Path(sys.executable).absolute().with_name("rigdeck-agent")


@pytest.fixture(autouse=True)
def no_private_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest's tmp_path lies under /tmp, which the unit rejects because of
    # PrivateTmp=yes; tests of that check set their own directories.
    monkeypatch.setattr(service_unit, "PRIVATE_TMP_DIRS", ())


def make_host(directory: Path, extra: str = "") -> Path:
    config = write_config(directory, extra)
    (directory / "data").mkdir()
    return config


def install(*args: str) -> Result:
    return CliRunner().invoke(
        cli, ["install-service", *args], prog_name="rigdeck-agent"
    )


def settings(unit: str) -> dict[str, list[str]]:
    """Return each setting of a unit with its values, in order."""
    values: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_names_absolute_paths(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")

    result = install("--config", str(config))

    unit = settings(result.stdout)
    assert result.exit_code == 0, result.output
    assert unit["ExecStart"] == [f"{SCRIPT} run --config {config.resolve()}"]
    assert unit["WorkingDirectory"] == [str(config.resolve().parent)]
    assert unit["ReadWritePaths"] == [str((tmp_path / "host" / "data").resolve())]
    assert unit["User"] == [getpass.getuser()]


def test_unit_hardens_but_keeps_devices(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")

    unit = settings(install("--config", str(config)).stdout)

    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["PrivateTmp"] == ["yes"]
    assert unit["PrivateDevices"] == ["no"]
    assert "DeviceAllow" not in unit
    assert "ProtectClock" not in unit
    assert "DevicePolicy" not in unit
    assert unit["Restart"] == ["on-failure"]
    assert unit["KillMode"] == ["mixed"]
    assert unit["KillSignal"] == ["SIGTERM"]
    assert int(unit["LimitNOFILE"][0]) >= 65536


def test_stop_timeout_exceeds_grace_periods(tmp_path: Path) -> None:
    config = make_host(
        tmp_path / "host",
        "[training]\ncancel_grace_seconds = 100.5\n"
        "[serving]\nstop_grace_seconds = 50\n",
    )

    unit = settings(install("--config", str(config)).stdout)

    timeout = int(unit["TimeoutStopSec"][0])
    assert timeout > 100.5 + 50
    assert timeout == 5 + 50 + 101 + 30 + 30


def test_missing_config_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "rigdeck-agent.service"
    missing = tmp_path / "nowhere" / "agent.toml"

    result = install("--config", str(missing), "--output", str(output))

    assert result.exit_code == 1
    assert str(missing) in result.stderr
    assert "rigdeck-agent init" in result.stderr
    assert "No unit was written." in result.stderr
    assert not output.exists()


def test_invalid_config_names_key(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host", "[drift]\nqueue_rowz = 1\n")
    output = tmp_path / "rigdeck-agent.service"

    result = install("--config", str(config), "--output", str(output))

    assert result.exit_code == 1
    assert str(config) in result.stderr
    assert "drift.queue_rowz" in result.stderr
    assert not output.exists()
    assert list(tmp_path.glob("*.service*")) == []


def test_output_file_matches_printed_unit(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "rigdeck-agent.service"
    printed = install("--config", str(config)).stdout

    result = install("--config", str(config), "--output", str(output))

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert output.read_text() == printed
    assert stat.S_IMODE(output.stat().st_mode) == 0o644
    assert "systemctl daemon-reload" in result.stderr


def test_output_named_in_install_hint(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "rigdeck-agent-a.service"

    result = install("--config", str(config), "--output", str(output))

    assert "enable --now rigdeck-agent-a.service" in output.read_text()
    assert "enable --now rigdeck-agent-a.service" in result.stderr


def test_existing_output_needs_force(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "rigdeck-agent.service"
    output.write_text("old\n")

    rejected = install("--config", str(config), "--output", str(output))
    old_text = output.read_text()
    forced = install("--config", str(config), "--output", str(output), "--force")

    assert rejected.exit_code == 1
    assert "--force" in rejected.stderr
    assert old_text == "old\n"
    assert forced.exit_code == 0, forced.output
    assert output.read_text().startswith("# rigdeck agent test-agent")


def test_output_in_missing_directory(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "missing" / "rigdeck-agent.service"

    result = install("--config", str(config), "--output", str(output))

    assert result.exit_code == 1
    assert str(output) in result.stderr
    assert "Create the directory first" in result.stderr


def test_output_without_service_suffix(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "rigdeck-agent.conf"

    result = install("--config", str(config), "--output", str(output))

    assert result.exit_code == 1
    assert "does not end in .service" in result.stderr
    assert not output.exists()


def test_output_under_a_file_is_a_clean_error(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    (tmp_path / "afile").write_text("x")
    output = tmp_path / "afile" / "rigdeck-agent.service"

    result = install("--config", str(config), "--output", str(output))

    assert result.exit_code == 1
    assert "Cannot write the unit to" in result.stderr
    assert "Traceback" not in result.output


def test_unknown_user_is_rejected(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    output = tmp_path / "rigdeck-agent.service"

    result = install(
        "--config", str(config), "--user", "no-such-user-x1", "--output", str(output)
    )

    assert result.exit_code == 1
    assert "No user 'no-such-user-x1'" in result.stderr
    assert "useradd" in result.stderr
    assert not output.exists()


def test_missing_data_dir_is_rejected(tmp_path: Path) -> None:
    config = write_config(tmp_path / "host")

    result = install("--config", str(config))

    assert result.exit_code == 1
    assert str(tmp_path / "host" / "data") in result.stderr
    assert "mkdir -p" in result.stderr
    assert result.stdout == ""


def test_readable_store_is_warned_about(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host")
    store = tmp_path / "host" / "data" / "store.db"
    store.touch()
    store.chmod(0o644)

    result = install("--config", str(config))

    assert result.exit_code == 0, result.output
    assert f"{store} has mode 0644" in result.stderr
    assert "chmod -R go=" in result.stderr


def test_path_under_private_tmp_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_unit, "PRIVATE_TMP_DIRS", (tmp_path / "scratch",))
    config = make_host(tmp_path / "scratch" / "host")

    result = install("--config", str(config))

    assert result.exit_code == 1
    assert "PrivateTmp=yes" in result.stderr
    assert str(config.resolve()) in result.stderr


def test_path_with_space_is_rejected(tmp_path: Path) -> None:
    config = make_host(tmp_path / "my host")

    result = install("--config", str(config))

    assert result.exit_code == 1
    assert "' '" in result.stderr
    assert result.stdout == ""


def test_percent_in_path_is_escaped(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host%1")

    unit = settings(install("--config", str(config)).stdout)

    assert unit["ExecStart"] == [
        f"{SCRIPT} run --config {str(config.resolve()).replace('%', '%%')}"
    ]
    assert unit["ReadWritePaths"][0].endswith("/host%%1/data")


def test_executable_must_sit_beside_interpreter(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnitError, match="pip install"):
        agent_executable(str(tmp_path / "bin" / "python"))


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed on this machine",
)
def test_systemd_analyze_accepts_unit(tmp_path: Path) -> None:
    config = make_host(tmp_path / "host%1")
    output = tmp_path / "rigdeck-agent.service"
    install("--config", str(config), "--output", str(output))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # verify exits 0 after an unknown key or a bad value, which it only reports.
    problems = [line for line in result.stderr.splitlines() if output.name in line]
    assert result.returncode == 0, result.stderr
    assert problems == []


def test_cli_commands_create_the_store_private(tmp_path: Path) -> None:
    # token create before the agent's first run creates the store; with the
    # shell's usual umask 022 it would be readable by every user.
    config = write_config(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "token",
            "create",
            "ops",
            "--role",
            "operator",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.umask(0o022),
    )

    assert result.returncode == 0, result.stderr
    store = tmp_path / "data" / "store.db"
    assert stat.S_IMODE(store.stat().st_mode) & 0o077 == 0


# Symlinks. The tests make the scratch directory stand in for /tmp.


def make_venv(directory: Path, python_target: Path) -> Path:
    """Create a venv-like DIRECTORY/bin whose python links to ``python_target``."""
    python_target.parent.mkdir(parents=True, exist_ok=True)
    python_target.touch()
    python_target.chmod(0o755)
    bin_dir = directory / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.symlink_to(python_target)
    script = bin_dir / "rigdeck-agent"
    script.write_text(f"#!{python}\n")
    script.chmod(0o755)
    return python


def build_for(config: Path, python: Path) -> service_unit.ServiceUnit:
    from agent.config import load_config

    executable = agent_executable(str(python))
    unit, _ = service_unit.build_unit(
        load_config(config), getpass.getuser(), executable, python
    )
    return unit


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(service_unit, "PRIVATE_TMP_DIRS", (scratch,))
    return scratch


def test_interpreter_linked_into_private_tmp(tmp_path: Path, scratch: Path) -> None:
    config = make_host(tmp_path / "host")
    base_python = scratch / "python" / "bin" / "python3.11"
    python = make_venv(tmp_path / "venv", base_python)

    with pytest.raises(ServiceUnitError) as raised:
        build_for(config, python)

    message = str(raised.value)
    assert message.startswith(f"The path of the Python interpreter, {python}, ")
    assert f"resolves through a symlink to {base_python} under {scratch}" in message
    assert "PrivateTmp=yes" in message


def test_venv_linked_into_private_tmp(tmp_path: Path, scratch: Path) -> None:
    config = make_host(tmp_path / "host")
    make_venv(scratch / "venv", tmp_path / "base" / "python3.11")
    (tmp_path / "venv").symlink_to(scratch / "venv")

    with pytest.raises(ServiceUnitError) as raised:
        build_for(config, tmp_path / "venv" / "bin" / "python")

    message = str(raised.value)
    assert message.startswith("The path of the rigdeck-agent script, ")
    assert f"symlink to {scratch / 'venv' / 'bin' / 'rigdeck-agent'}" in message


def test_link_in_private_tmp_to_venv(tmp_path: Path, scratch: Path) -> None:
    # The link itself is hidden from the service, wherever it points.
    config = make_host(tmp_path / "host")
    make_venv(tmp_path / "venv", tmp_path / "base" / "python3.11")
    (scratch / "venv").symlink_to(tmp_path / "venv")
    python = scratch / "venv" / "bin" / "python"

    with pytest.raises(ServiceUnitError) as raised:
        build_for(config, python)

    message = str(raised.value)
    assert f"{python.with_name('rigdeck-agent')}, is under {scratch}" in message


def test_config_linked_into_private_tmp(tmp_path: Path, scratch: Path) -> None:
    make_host(scratch / "host")
    (tmp_path / "host").symlink_to(scratch / "host")

    result = install("--config", str(tmp_path / "host" / "agent.toml"))

    assert result.exit_code == 1
    assert f"{scratch / 'host' / 'agent.toml'}, is under {scratch}" in result.stderr
    assert "PrivateTmp=yes" in result.stderr


def test_interpreter_symlink_loop_is_rejected(tmp_path: Path, scratch: Path) -> None:
    config = make_host(tmp_path / "host")
    python = make_venv(tmp_path / "venv", tmp_path / "base" / "python3.11")
    loop = tmp_path / "loop"
    loop.symlink_to(python)
    python.unlink()
    python.symlink_to(loop)

    with pytest.raises(ServiceUnitError, match="cannot be resolved"):
        build_for(config, python)


def test_exec_start_keeps_venv_links(tmp_path: Path, scratch: Path) -> None:
    config = make_host(tmp_path / "host")
    base_python = tmp_path / "base" / "python3.11"
    make_venv(tmp_path / "venvs" / "a", base_python)
    (tmp_path / "venv").symlink_to(tmp_path / "venvs" / "a")
    script = tmp_path / "venv" / "bin" / "rigdeck-agent"

    text = build_for(config, tmp_path / "venv" / "bin" / "python").render()

    unit = settings(text)
    assert unit["ExecStart"] == [f"{script} run --config {config.resolve()}"]
    assert str(tmp_path / "venvs") not in text
    assert str(base_python) not in text
