"""Messages that workers post back to the app thread."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message


@dataclass
class AgentPolled(Message):
    """An agent's poll finished (well or not); its client's status is current."""

    agent: str
