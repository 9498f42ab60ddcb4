"""Exceptions raised by the console.

ConsoleError
 ├── ConsoleConfigError   console.toml or a command-line agent is invalid
 ├── AgentRequestError    an agent responded with an error or not at all
 │    └── TunnelError     the ssh:// port forward could not be opened
 └── ReadOnlyError        a state-changing request in a --readonly console
"""

from __future__ import annotations


class ConsoleError(Exception):
    """Base class of every error the console raises on purpose."""


class ConsoleConfigError(ConsoleError):
    """console.toml, a token file or an ``--agent`` option is invalid."""


class AgentRequestError(ConsoleError):
    """A request to an agent failed.

    Attributes:
        agent: the agent's name in the console.
        status: the HTTP status code, or None when no response arrived.
        code: the ``error.code`` of the agent's JSON error body, if any.
    """

    def __init__(
        self,
        agent: str,
        message: str,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{agent}: {message}")
        self.agent = agent
        self.message = message
        self.status = status
        self.code = code


class TunnelError(AgentRequestError):
    """The ssh client exited or never opened its local port forward."""


class ReadOnlyError(ConsoleError):
    """The console was started with ``--readonly`` and sends no changes."""

    def __init__(self, agent: str, method: str, path: str) -> None:
        super().__init__(
            f"{agent}: not sending {method} {path} because the console is read-only "
            "(--readonly); restart it without --readonly to act."
        )
