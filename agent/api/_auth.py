"""Bearer-token authentication and the roles viewer < operator < approver < admin."""

from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Depends, Request

from agent.errors import ApiError
from store import tokens as token_rows

ROLE_RANK = {role: rank for rank, role in enumerate(token_rows.ROLES)}

# last_used_at is informational; writing it at most once a minute per token
# keeps reads from turning into writes.
_LAST_USED_RESOLUTION_SECONDS = 60.0


@dataclass(frozen=True)
class Principal:
    """The caller: the token's name and role."""

    name: str
    role: str

    def has(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "unauthenticated",
            "This endpoint needs a bearer token: send 'Authorization: Bearer <token>'. "
            "Create one with `rigdeck-agent token create NAME --role viewer`.",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "The Authorization header must be 'Bearer <token>'.",
        )
    context = request.app.state.context
    row = token_rows.find_active(context.store.db, token.strip())
    if row is None:
        raise ApiError(
            401,
            "invalid_token",
            "The bearer token is unknown or revoked. Ask an admin for a new one "
            "(`rigdeck-agent token create`).",
        )
    _touch(context, row)
    return Principal(name=row["name"], role=row["role"])


def _touch(context, row: dict) -> None:
    now = time.time()
    if (row["last_used_at"] or 0) + _LAST_USED_RESOLUTION_SECONDS > now:
        return
    with context.store.write() as db:
        db.conn.execute(
            "UPDATE tokens SET last_used_at = ? WHERE id = ?", (now, row["id"])
        )


def require(role: str):
    """Build a FastAPI dependency that admits tokens of ``role`` or higher."""
    if role not in ROLE_RANK:
        raise ValueError(f"Unknown role {role!r}; expected one of {list(ROLE_RANK)}.")

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.has(role):
            raise ApiError(
                403,
                "forbidden",
                f"This action needs the {role} role or higher; the token "
                f"{principal.name!r} has the {principal.role} role.",
            )
        return principal

    dependency.required_role = role
    return dependency
