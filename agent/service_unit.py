"""The systemd unit that runs ``rigdeck-agent run`` as a service on a GPU host.

``rigdeck-agent install-service`` builds a ``ServiceUnit`` from a loaded
agent.toml, checks the paths and the user it names, and renders the unit
text. The unit hardens the service (read-only file system except the data
directory, private /tmp, no privilege gain) but leaves the device nodes
alone, because CUDA and NVML need /dev/nvidia*.
"""

from __future__ import annotations

import contextlib
import math
import os
import pwd
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.config import AgentConfig
from agent.errors import AgentError

UNIT_NAME = "rigdeck-agent.service"
EXECUTABLE_NAME = "rigdeck-agent"

# uvicorn's timeout_graceful_shutdown in agent.daemon._serve: how long the
# control API may drain its requests before the services stop.
API_SHUTDOWN_SECONDS = 5.0
# Room for the stops that have no configured grace period: the telemetry
# flush, the drift checkpoint and the notifier threads.
# NOTE: a hung drift thread or notifier delays the stop by up to 60 s or
# 300 s (their join timeouts), past this margin, and systemd then kills it.
STOP_MARGIN_SECONDS = 30.0
RESTART_SECONDS = 5
START_LIMIT_BURST = 5
START_LIMIT_INTERVAL_SECONDS = 300
OPEN_FILES_LIMIT = 65536
# PrivateTmp=yes gives the service empty directories here, so nothing the
# agent needs may live below them.
PRIVATE_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))

# Characters that systemd would split on or unquote in ExecStart=,
# WorkingDirectory= or ReadWritePaths=. A path with one is rejected rather
# than quoted, because the quoting rules differ between those settings.
_UNSAFE_PATH_CHARACTERS = re.compile(r"[\s\"'\\;]|[\x00-\x1f\x7f]")


class ServiceUnitError(AgentError):
    """A unit that cannot be written: a bad path, user or executable."""


@dataclass(frozen=True)
class ServiceUnit:
    """Values a unit is rendered from: who runs what, where, and the stop timeout."""

    agent_name: str
    user: str
    executable: Path
    config_path: Path
    working_directory: Path
    data_dir: Path
    stop_timeout_seconds: int
    stop_parts: str

    def render(self, unit_name: str = UNIT_NAME) -> str:
        """Return the unit file's text; ``unit_name`` appears in its install hint."""
        return _TEMPLATE.format(
            agent_name=self.agent_name,
            unit_name=unit_name,
            description_config=_escape_specifiers(str(self.config_path)),
            start_limit_interval=START_LIMIT_INTERVAL_SECONDS,
            start_limit_burst=START_LIMIT_BURST,
            user=_escape_specifiers(self.user),
            working_directory=_escape_specifiers(str(self.working_directory)),
            exec_start=_exec_start(self.executable, self.config_path),
            restart_seconds=RESTART_SECONDS,
            stop_parts=self.stop_parts,
            stop_timeout_seconds=self.stop_timeout_seconds,
            open_files=OPEN_FILES_LIMIT,
            data_dir=_escape_specifiers(str(self.data_dir)),
        )


def stop_timeout(config: AgentConfig) -> tuple[int, str]:
    """Compute TimeoutStopSec=, the longest orderly stop plus a margin, and its sum.

    The daemon stops its services one after another: the API drains, the
    serving worker gets ``serving.stop_grace_seconds`` before SIGKILL, the
    training runs ``training.cancel_grace_seconds``, and registrations in
    progress ``REGISTRATION_STOP_SECONDS``.
    """
    from agent.training.manager import REGISTRATION_STOP_SECONDS

    parts = [
        (API_SHUTDOWN_SECONDS, "API drain"),
        (config.serving.stop_grace_seconds, "serving.stop_grace_seconds"),
        (config.training.cancel_grace_seconds, "training.cancel_grace_seconds"),
        (REGISTRATION_STOP_SECONDS, "registrations in progress"),
        (STOP_MARGIN_SECONDS, "margin"),
    ]
    total = math.ceil(sum(seconds for seconds, _ in parts))
    text = "\n#   + ".join(f"{seconds:g} s {label}" for seconds, label in parts)
    return total, text


def agent_executable(python: str | None = None) -> Path:
    """Return the ``rigdeck-agent`` script installed beside ``python``.

    ``python`` defaults to the running interpreter, ``sys.executable``. The
    path is made absolute but symlinks are kept: a virtual environment's
    ``bin/python`` is often a link to the system interpreter, and the
    script beside the link is the one that uses the environment.

    Raises:
        ServiceUnitError: there is no executable script beside ``python``.
    """
    python = python or sys.executable
    script = Path(python).absolute().with_name(EXECUTABLE_NAME)
    if not (script.is_file() and os.access(script, os.X_OK)):
        raise ServiceUnitError(
            f"No executable {EXECUTABLE_NAME} script at {script}, beside the "
            f"interpreter {python}. Install rigdeck into that environment "
            "(pip install 'rigdeck[agent]') and run install-service with its "
            f"{EXECUTABLE_NAME}."
        )
    return script


def build_unit(
    config: AgentConfig, user: str, executable: Path, interpreter: Path
) -> tuple[ServiceUnit, list[str]]:
    """Check the user and paths a unit names, then build it with stderr warnings.

    Args:
        config: the loaded agent.toml, whose path and data directory are
            already absolute with symlinks resolved.
        user: the account the service runs as.
        executable: the ``rigdeck-agent`` script that ExecStart= names, as
            returned by ``agent_executable``.
        interpreter: the Python that ``executable`` was found beside. The
            script's ``#!`` line, written by pip, names an interpreter in
            that same directory, which resolves to the same file, so the
            service starts it and must be able to see it.

    Raises:
        ServiceUnitError: the user does not exist, the data directory is
            missing, or a path cannot appear in a unit.
    """
    if config.path is None:
        raise ServiceUnitError("The configuration was not loaded from a file.")
    account = _find_user(user)
    working_directory = config.path.parent
    paths = {
        "the rigdeck-agent script": executable,
        "the Python interpreter": interpreter,
        "the configuration file": config.path,
        "the data directory (agent.data_dir)": config.data_dir,
    }
    for label, path in paths.items():
        _check_unit_path(label, path)
    _check_data_dir(config)
    timeout, parts = stop_timeout(config)
    unit = ServiceUnit(
        agent_name=config.agent.name,
        user=user,
        executable=executable,
        config_path=config.path,
        working_directory=working_directory,
        data_dir=config.data_dir,
        stop_timeout_seconds=timeout,
        stop_parts=parts,
    )
    return unit, _warnings(account, config)


def write_unit(text: str, path: Path, force: bool) -> None:
    """Write the unit to ``path`` (mode 0644) through a temporary file and a rename.

    Raises:
        ServiceUnitError: ``path`` exists without ``force``, or cannot be written.
    """
    if path.is_dir():
        raise ServiceUnitError(
            f"{path} is a directory; give the unit's file name, e.g. "
            f"{path / UNIT_NAME}."
        )
    if path.suffix != ".service":
        raise ServiceUnitError(
            f"{path.name} does not end in .service, so systemd would not load it "
            f"as a unit; use e.g. {path.with_name(UNIT_NAME)}."
        )
    if (path.exists() or path.is_symlink()) and not force:
        raise ServiceUnitError(f"{path} exists; pass --force to replace it.")
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ServiceUnitError(
            f"Cannot write the unit to {path}: {error.strerror}. {_write_fix(error)}"
        ) from error


def _write_fix(error: OSError) -> str:
    if isinstance(error, PermissionError):
        return (
            "Run the command as a user who may write there (e.g. with sudo), or "
            "print the unit without --output and copy it."
        )
    if isinstance(error, FileNotFoundError):
        return "Create the directory first, or give a path in an existing one."
    return "Check the path and the file system, or print the unit without --output."


def _find_user(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise ServiceUnitError(
            f"No user {user!r} on this host. Create it first (e.g. `useradd "
            f"--system {user}`), or pass an existing one with --user."
        ) from None


def _check_unit_path(label: str, path: Path) -> None:
    match = _UNSAFE_PATH_CHARACTERS.search(str(path))
    if match is not None:
        raise ServiceUnitError(
            f"The path of {label}, {str(path)!r}, contains {match.group()!r}, which "
            "a systemd unit would split or unquote. Move it to a path of letters, "
            "digits and '/._-'."
        )
    _check_outside_private_tmp(label, path)


def _check_outside_private_tmp(label: str, path: Path) -> None:
    # The unit names ``path`` as given, with its symlinks. Resolving a
    # venv's bin/python would name the base interpreter, which runs outside
    # the environment. A link such as /srv/rigdeck/venv may also be there
    # so that an upgrade can point it at a new environment. PrivateTmp=yes
    # gives the service empty /tmp and /var/tmp, so both the path and the
    # file it resolves to must lie outside them.
    # NOTE: a chain that passes through /tmp on its way elsewhere
    # (/srv/a -> /tmp/b -> /srv/c) is not caught; only its ends are checked.
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as error:
        # Python 3.11 raises RuntimeError on a symlink loop.
        raise ServiceUnitError(
            f"The path of {label}, {path}, cannot be resolved: {error}. Fix the "
            "symlink it goes through."
        ) from error
    for private in PRIVATE_TMP_DIRS:
        if path.is_relative_to(private):
            where = f"{path}, is under {private}"
        elif resolved.is_relative_to(private):
            where = f"{path}, resolves through a symlink to {resolved} under {private}"
        else:
            continue
        raise ServiceUnitError(
            f"The path of {label}, {where}, which the unit replaces with an "
            "empty private directory (PrivateTmp=yes). Move it elsewhere, e.g. "
            "under /srv or /opt."
        )


def _check_data_dir(config: AgentConfig) -> None:
    # ReadWritePaths= needs the directory to exist when the service starts,
    # and ProtectSystem=strict keeps the agent from creating it.
    if not config.data_dir.is_dir():
        raise ServiceUnitError(
            f"The data directory {config.data_dir} (agent.data_dir in "
            f"{config.path}) does not exist. Create it and give it to the "
            "service's user (mkdir -p DIR && chown USER: DIR), then run "
            "install-service again."
        )


def _warnings(account: pwd.struct_passwd, config: AgentConfig) -> list[str]:
    warnings = []
    if account.pw_uid == 0:
        warnings.append(
            "The unit runs the agent as root. Create a system user for it and "
            "pass --user, so that training code and plugins run unprivileged."
        )
    for path in (config.data_dir, config.store_path):
        if path.exists() and path.stat().st_uid != account.pw_uid:
            warnings.append(
                f"{path} belongs to uid {path.stat().st_uid}, not to "
                f"{account.pw_name} (uid {account.pw_uid}), so the agent may fail "
                f"to open its store. Run: chown -R {account.pw_name}: "
                f"{config.data_dir}"
            )
            break
    store = config.store_path
    if store.exists() and store.stat().st_mode & 0o077:
        mode = stat.S_IMODE(store.stat().st_mode)
        warnings.append(
            f"{store} has mode {mode:04o}, so other users can read its token "
            "hashes, predictions and audit log (rigdeck-agent sets umask 077, so "
            "something else created or changed it). Run: "
            f"chmod -R go= {config.data_dir}"
        )
    return warnings


def _escape_specifiers(text: str) -> str:
    # systemd expands %-specifiers in most settings; %% is a literal percent.
    return text.replace("%", "%%")


def _exec_start(executable: Path, config_path: Path) -> str:
    # ExecStart= also expands $VARIABLE; $$ is a literal dollar sign.
    parts = [str(executable), "run", "--config", str(config_path)]
    return " ".join(_escape_specifiers(part).replace("$", "$$") for part in parts)


_TEMPLATE = """\
# rigdeck agent {agent_name}, written by `rigdeck-agent install-service`.
# Install it as /etc/systemd/system/{unit_name}, then run:
#   systemctl daemon-reload && systemctl enable --now {unit_name}

[Unit]
Description=rigdeck agent {agent_name} ({description_config})
# Listeners off loopback need their address up when the agent binds them.
# nvidia-persistenced, where installed, keeps the driver loaded for NVML.
Wants=network-online.target
After=network-online.target nvidia-persistenced.service
# A configuration that keeps failing ends the restarts after {start_limit_burst}
# starts within {start_limit_interval} s. `systemctl reset-failed` clears the count.
StartLimitIntervalSec={start_limit_interval}
StartLimitBurst={start_limit_burst}

[Service]
Type=exec
User={user}
WorkingDirectory={working_directory}
ExecStart={exec_start}
Environment=PYTHONUNBUFFERED=1
Restart=on-failure
RestartSec={restart_seconds}
# SIGTERM goes to the agent alone, which ends its training runs (marked
# interrupted) and its serving worker itself, each with its grace period.
# Processes still left when it exits get SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
# The agent's longest orderly stop, after which systemd sends SIGKILL:
#     {stop_parts}
TimeoutStopSec={stop_timeout_seconds}
LimitNOFILE={open_files}
UMask=0077

# Hardening. The file system is read-only except the data directory.
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths={data_dir}
PrivateTmp=yes
# CUDA and NVML open /dev/nvidia*, so PrivateDevices= stays off, because
# it would give the service a /dev without them. ProtectClock= and
# DeviceAllow= are left out too, because either one turns on a device
# allow list that excludes the GPUs.
PrivateDevices=no
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
# With NoNewPrivileges=yes the driver cannot run the setuid nvidia-modprobe,
# so the NVIDIA modules and device files (/dev/nvidia-uvm included) must
# exist before the agent starts, e.g. through `nvidia-modprobe -u -c=0`
# at boot.

# CUDA, Triton and torch keep caches (compiled kernels, downloads) under
# the home directory, which ProtectSystem=strict makes read-only. %C is
# /var/cache for a system unit.
CacheDirectory=rigdeck/{agent_name}
Environment=XDG_CACHE_HOME=%C/rigdeck/{agent_name}
Environment=CUDA_CACHE_PATH=%C/rigdeck/{agent_name}/nv
Environment=TRITON_CACHE_DIR=%C/rigdeck/{agent_name}/triton

[Install]
WantedBy=multi-user.target
"""
