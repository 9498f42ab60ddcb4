"""Exceptions raised by the console.

ConsoleError
 ├── ConsoleConfigError   console.toml or a command-line agent is invalid
 └── AgentRequestError    an agent answered with an error or not at all
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class of every error the console raises on purpose."""


class ConsoleConfigError(ConsoleError):
    pass


class AgentRequestError(ConsoleError):
    def __init__(self, agent: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{agent}: {message}")
        self.agent = agent
        self.status = status
