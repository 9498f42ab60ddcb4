"""Pagination: lists return ``{"items": [...], "next_cursor": ...}``."""

from __future__ import annotations

from fastapi import Query

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# The largest integer SQLite stores; ids and cursors above it are invalid.
MAX_ID = 2**63 - 1


def limit_query() -> int:
    return Query(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page, 1 to 1000."
    )


def page(items: list[dict], limit: int, cursor_key: str = "id") -> dict:
    """Wrap one page; the cursor is the key of its last item when it is full."""
    next_cursor = items[-1][cursor_key] if len(items) == limit else None
    return {"items": items, "next_cursor": next_cursor}
