"""The agents the console connects to: console.toml plus --agent options."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from console.errors import ConsoleConfigError

DEFAULT_CONFIG = (
    Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config"))
    / "rigdeck"
    / "console.toml"
)
SCHEMES = ("http", "https", "ssh")
# The agent's port on the far side of an ssh:// tunnel when the URL's path
# does not name one; it is the port `rigdeck-agent init` writes.
DEFAULT_AGENT_PORT = 7070
_AGENT_KEYS = {"name", "url", "token_file", "ca_file"}


@dataclass(frozen=True)
class AgentEntry:
    """One agent the console watches."""

    name: str
    url: str
    token_file: Path | None = None
    ca_file: Path | None = None

    def read_token(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            return self.token_file.read_text().strip() or None
        except OSError as error:
            raise ConsoleConfigError(
                f"Cannot read the token file {self.token_file} of agent {self.name!r}: "
                f"{error.strerror}."
            ) from error


@dataclass(frozen=True)
class SshTarget:
    """The target of an ``ssh://USER@HOST[:SSH_PORT][/AGENT_PORT]`` URL.

    The tunnel logs in as ``user`` on ``host`` (port ``ssh_port``, default
    the ssh client's own) and forwards a local port to ``agent_port`` on that
    host's loopback interface, where the agent listens by default.
    """

    user: str | None
    host: str
    ssh_port: int | None
    agent_port: int


def check_url(url: str, where: str) -> str:
    """Return ``url`` without a trailing slash; raise when it is no agent URL."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConsoleConfigError(
            f"{where}: {url!r} is not an agent URL; use http://HOST:PORT, "
            "https://HOST:PORT or ssh://USER@HOST[:SSH_PORT][/AGENT_PORT]."
        )
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when read)
    except ValueError as error:
        raise ConsoleConfigError(f"{where}: {url!r} has an invalid port.") from error
    if parts.scheme == "ssh":
        ssh_target(url, where)
    elif parts.path.strip("/"):
        raise ConsoleConfigError(
            f"{where}: {url!r} has a path; give the agent's base URL, e.g. "
            f"{parts.scheme}://{parts.netloc} (the console adds /api/v1)."
        )
    return url.rstrip("/")


def ssh_target(url: str, where: str = "agent URL") -> SshTarget:
    """Parse an ``ssh://`` agent URL; the path, if any, is the agent's port."""
    parts = urlsplit(url)
    path = parts.path.strip("/")
    if path and not (path.isdigit() and 0 < int(path) < 65536):
        raise ConsoleConfigError(
            f"{where}: the path of {url!r} must be the agent's port on that host, "
            f"e.g. ssh://{parts.netloc}/{DEFAULT_AGENT_PORT}."
        )
    return SshTarget(
        user=parts.username,
        host=parts.hostname or "",
        ssh_port=parts.port,
        agent_port=int(path) if path else DEFAULT_AGENT_PORT,
    )


def load_console_config(path: Path) -> list[AgentEntry]:
    """Read ``[[agents]]`` from console.toml; a missing file means no agents."""
    if not path.exists():
        return []
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConsoleConfigError(f"{path} is not valid TOML: {error}") from error
    unknown = set(raw) - {"agents"}
    if unknown:
        raise ConsoleConfigError(
            f"{path}: unknown key(s) {sorted(unknown)}; expected [[agents]]."
        )
    entries = []
    for index, item in enumerate(raw.get("agents", [])):
        where = f"{path}: agents[{index}]"
        extra = set(item) - _AGENT_KEYS
        if extra:
            raise ConsoleConfigError(f"{where}: unknown key(s) {sorted(extra)}.")
        if "url" not in item:
            raise ConsoleConfigError(f"{where}: the key 'url' is missing.")
        url = check_url(str(item["url"]), f"{where}.url")
        entries.append(
            AgentEntry(
                name=str(item.get("name") or urlsplit(url).hostname),
                url=url,
                token_file=_path(item.get("token_file"), path),
                ca_file=_path(item.get("ca_file"), path),
            )
        )
    return entries


def _path(value: str | None, config_path: Path) -> Path | None:
    if value is None:
        return None
    return (config_path.parent / Path(value).expanduser()).resolve()


def agents_from_options(
    urls: tuple[str, ...],
    token_files: tuple[Path, ...],
    ca_file: Path | None = None,
) -> list[AgentEntry]:
    """Pair each ``--agent URL`` with the ``--token-file`` at the same position.

    ``ca_file`` applies to every ``https://`` agent given on the command line.
    """
    if token_files and len(token_files) != len(urls):
        raise ConsoleConfigError(
            f"Got {len(urls)} --agent and {len(token_files)} --token-file options; "
            "give one --token-file per --agent, in the same order."
        )
    entries = []
    for index, url in enumerate(urls):
        url = check_url(url, "--agent")
        token_file = token_files[index] if token_files else None
        entries.append(
            AgentEntry(
                name=urlsplit(url).netloc,
                url=url,
                token_file=token_file,
                ca_file=ca_file if url.startswith("https://") else None,
            )
        )
    return entries


def check_unique_names(entries: list[AgentEntry]) -> list[AgentEntry]:
    """Return ``entries``; raise when two agents share a name.

    The name keys every table row and command (``:host NAME``), so it must
    be unique across console.toml and the ``--agent`` options.
    """
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.name in seen:
            raise ConsoleConfigError(
                f"Two agents are named {entry.name!r} ({seen[entry.name]} and "
                f"{entry.url}); give each [[agents]] entry a distinct name."
            )
        seen[entry.name] = entry.url
    return entries
