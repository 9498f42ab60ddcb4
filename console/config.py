"""Which agents the console connects to: console.toml plus --agent options."""

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


def check_url(url: str, where: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise ConsoleConfigError(
            f"{where}: {url!r} is not an agent URL; use http://HOST:PORT, "
            "https://HOST:PORT or ssh://USER@HOST[:PORT]."
        )
    return url.rstrip("/")


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
    urls: tuple[str, ...], token_files: tuple[Path, ...]
) -> list[AgentEntry]:
    """Pair each ``--agent URL`` with the ``--token-file`` at the same position."""
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
            AgentEntry(name=urlsplit(url).netloc, url=url, token_file=token_file)
        )
    return entries
