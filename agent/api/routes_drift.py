"""Drift monitors, their settings and drift events (viewer).

The monitors and events routes read the store, so they show a running
agent's monitors as of their last checkpoint (``drift.checkpoint_seconds``,
and at once after each drift event) and work the same way after a
restart.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.config import MODEL_NAME_PATTERN
from agent.drift import rows as drift_rows
from agent.errors import ApiError

router = APIRouter(prefix="/api/v1/drift")

RECENT_VALUES = 20


@router.get("/monitors", summary="Drift monitors with their state and settings")
def list_monitors(
    request: Request,
    model: str | None = Query(None, pattern=MODEL_NAME_PATTERN),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    if model is not None:
        _check_model(db, model)
    items = [_monitor_item(row) for row in drift_rows.list_monitors(db, model)]
    return {"items": items, "next_cursor": None}


@router.get("/settings", summary="Each model's monitoring settings, as validated")
def list_settings(
    request: Request,
    model: str | None = Query(None, pattern=MODEL_NAME_PATTERN),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    config = request.app.state.context.config
    models = [m for m in config.models if model is None or m.name == model]
    if model is not None and not models:
        raise ApiError(
            404,
            "not_found",
            f"No configured model named {model!r}; GET /api/v1/models lists them.",
        )
    items = [{"model": m.name, **m.monitoring.model_dump(mode="json")} for m in models]
    return {"items": items, "next_cursor": None}


@router.get("/events", summary="Drift events, oldest first")
def list_events(
    request: Request,
    model: str | None = Query(None, pattern=MODEL_NAME_PATTERN),
    since: float | None = Query(None, ge=0, description="Unix seconds."),
    cursor: int | None = Query(
        None, ge=0, le=MAX_ID, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    if model is not None:
        _check_model(db, model)
    items = drift_rows.list_events(
        db, model=model, since=since, after_id=cursor, limit=limit
    )
    return page(items, limit)


def _check_model(db: Any, model: str) -> None:
    known = db.conn.execute("SELECT 1 FROM models WHERE name = ?", (model,)).fetchone()
    if known is None:
        raise ApiError(
            404,
            "not_found",
            f"No model named {model!r}; GET /api/v1/models lists the models.",
        )


def _monitor_item(row: dict[str, Any]) -> dict[str, Any]:
    state = row["state"] or {}
    recent = state.get("history_raw") or state.get("warmup") or []
    pending = state.get("pending") or {}
    reference = state.get("reference")
    return {
        "id": row["id"],
        "model": row["model"],
        "role": row["role"],
        "version": row["version"],
        "signal": row["signal"],
        "detector": row["detector"],
        "settings": row["params"],
        "status": state.get("status"),
        "pending_change_index": pending.get("change_index"),
        "last_event_index": state.get("last_event_index"),
        "counts": state.get("counts", {}),
        "recent_values": recent[-RECENT_VALUES:],
        "reference": None
        if reference is None
        else {
            "source": state.get("reference_source"),
            "mean": reference["mean"],
            "std": reference["std"],
        },
        "updated_at": row["updated_at"],
    }
