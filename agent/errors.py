"""Exceptions raised by the agent.

AgentError
 ├── ConfigError       agent.toml is missing, not TOML, or has an invalid value
 ├── LockError         another agent already runs on this data directory
 └── ApiError          a request the control API rejects (carries the status)
"""

from __future__ import annotations


class AgentError(Exception):
    """Base class of every error the agent raises on purpose."""


class ConfigError(AgentError):
    def __init__(self, path: str, problems: list[str]) -> None:
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"Invalid configuration in {path}:\n{lines}")
        self.path = path
        self.problems = problems


class LockError(AgentError):
    def __init__(self, data_dir: str, pid: int | None) -> None:
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"Another agent ({holder}) is already running on the data directory "
            f"{data_dir}. Stop it first (kill {pid or '<pid>'}), or give this "
            "agent its own data_dir."
        )
        self.data_dir = data_dir
        self.pid = pid


class ApiError(AgentError):
    """An error the API turns into ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
