"""The agent's control API: JSON under /api/v1, bearer tokens, one error shape."""

from agent.api._app import create_app
from agent.api._auth import Principal, require

__all__ = ["Principal", "create_app", "require"]
