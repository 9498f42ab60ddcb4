"""Messages that workers and widgets post to the app and its screens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class AgentPolled(Message):
    """A poll of one agent finished, well or not.

    Attributes:
        agent: the agent's name.
        results: fetched bodies by resource kind.
        errors: by resource kind, the status code (None when no response
            came) and the message of each request that failed.
    """

    agent: str
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, tuple[int | None, str]] = field(default_factory=dict)


@dataclass
class IdentityFound(Message):
    """The token's name and role on an agent became known (or changed)."""

    agent: str


@dataclass
class ActionSucceeded(Message):
    """A state-changing request was accepted by the agent."""

    agent: str
    action: str
    target: str
    result: Any


@dataclass
class ActionFailed(Message):
    """A state-changing request failed; ``message`` is the agent's reason."""

    agent: str
    action: str
    target: str
    message: str
    status: int | None


@dataclass
class LogChunkFetched(Message):
    """A chunk of a run's log arrived, starting at ``offset``."""

    agent: str
    run_id: int
    offset: int
    text: str
    next_offset: int
    running: bool
    state: str | None


@dataclass
class AuditVerified(Message):
    """``GET /api/v1/audit/verify`` returned ``result``, or failed with ``error``."""

    agent: str
    result: dict[str, Any] | None
    error: str | None


@dataclass
class CommandSubmitted(Message):
    """The user entered a ``:`` command, e.g. ``host gpu-a``."""

    command: str


@dataclass
class FilterChanged(Message):
    """The ``/`` filter text changed; an empty string clears the filter."""

    text: str
