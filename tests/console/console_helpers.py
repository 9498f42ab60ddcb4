"""Helpers for console tests: apps on fake agents, waiting, reading the screen."""

from __future__ import annotations

import html
import io
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from fake_agent import NOW, FakeAgent  # noqa: E402

from console.app import RigdeckApp  # noqa: E402
from console.config import AgentEntry  # noqa: E402


def build_app(
    tmp_path: Path,
    agents: list[FakeAgent],
    token: str | dict[str, str] = "approver-token",
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    **options: Any,
) -> RigdeckApp:
    """Return a console on ``agents``, each reached through its MockTransport.

    ``token`` is one token for every agent, or one per agent name.
    ``transports`` replaces the transport of the agents it names.
    """
    entries = []
    for agent in agents:
        secret = token if isinstance(token, str) else token[agent.name]
        token_file = tmp_path / f"{agent.name}.token"
        token_file.write_text(secret + "\n")
        entries.append(
            AgentEntry(agent.name, f"http://{agent.name}.test", token_file=token_file)
        )
    options.setdefault("clock", lambda: NOW)
    by_name = {agent.name: agent.transport for agent in agents}
    by_name.update(transports or {})
    return RigdeckApp(entries, transports=by_name, **options)


async def wait_until(
    pilot, condition: Callable[[], Any], timeout: float = 10.0, what: str = ""
) -> Any:
    """Let the app run until ``condition()`` is truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await pilot.pause(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def loaded(app: RigdeckApp, *kinds: str) -> bool:
    """Whether every agent's ``kinds`` were fetched (or found missing) once."""
    return all(
        kind in data.fetched_at or kind in data.missing
        for data in app.data.values()
        for kind in kinds
    )


def text_of(renderable: Any, width: int = 120) -> str:
    """Return a Rich renderable (or a Static's content) as plain text."""
    from rich.console import Console

    content = getattr(renderable, "content", renderable)
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(content)
    return console.export_text()


def screen_text(app: RigdeckApp) -> str:
    """Return what the terminal shows now, as lines of plain text."""
    return svg_text(app.export_screenshot())


def svg_text(svg: str) -> str:
    """Return the text of a Textual SVG screenshot, one line per terminal row."""
    rows: dict[int, dict[int, str]] = {}
    pattern = re.compile(
        r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
        r'clip-path="url\(#[^)]*-line-(\d+)\)">(.*?)</text>'
    )
    for match in pattern.finditer(svg):
        x, line, content = match.groups()
        column = round(float(x) / CHARACTER_WIDTH_PX)
        row = rows.setdefault(int(line), {})
        for offset, character in enumerate(html.unescape(content).replace("\xa0", " ")):
            row[column + offset] = character
    lines = []
    for line in sorted(rows):
        row = rows[line]
        width = max(row) + 1 if row else 0
        lines.append("".join(row.get(i, " ") for i in range(width)).rstrip())
    return "\n".join(lines)


# Rich's SVG export places each terminal cell this many pixels apart.
CHARACTER_WIDTH_PX = 12.2


def entry_for(tmp_path: Path, name: str, url: str, token: str | None) -> AgentEntry:
    """Return an AgentEntry for ``url`` whose token file contains ``token``."""
    token_file = None
    if token is not None:
        token_file = tmp_path / f"{name}.token"
        token_file.write_text(token + "\n")
    return AgentEntry(name, url, token_file=token_file)
