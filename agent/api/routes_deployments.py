"""Deployments and the serving worker (viewer)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.config import MODEL_NAME_PATTERN
from agent.errors import ApiError
from store import deployments as deployment_rows

router = APIRouter(prefix="/api/v1")


@router.get(
    "/deployments", summary="What each model serves now, with its rollback target"
)
def list_deployments(
    request: Request,
    cursor: str | None = Query(
        None, max_length=64, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    context = request.app.state.context
    db = context.store.db
    serving = _serving_status(context)
    items = [
        _deployment_item(db, row, serving)
        for row in deployment_rows.list_deployments(db, after_model=cursor, limit=limit)
    ]
    return page(items, limit, cursor_key="model")


@router.get(
    "/deployments/{name}/history", summary="A model's deployment changes, newest first"
)
def deployment_history(
    request: Request,
    name: str = Path(..., pattern=MODEL_NAME_PATTERN, description="Model name."),
    cursor: int | None = Query(
        None, ge=1, le=MAX_ID, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    if deployment_rows.get_deployment(db, name) is None:
        raise ApiError(
            404,
            "not_found",
            f"Model {name!r} has no deployment; see GET /api/v1/deployments.",
        )
    items = deployment_rows.list_history(db, name, before_id=cursor, limit=limit)
    return page(items, limit)


@router.get("/serving", summary="The serving worker: state, pid, port, URL, restarts")
def serving_status(
    request: Request, principal: Principal = Depends(require("viewer"))
) -> dict:
    return _serving_status(request.app.state.context)


def _serving_status(context: Any) -> dict[str, Any]:
    serving = context.serving
    if serving is None:
        return {"state": "disabled", "url": None, "port": None}
    return serving.supervisor.status()


def _deployment_item(db: Any, row: dict[str, Any], serving: dict[str, Any]) -> dict:
    item = dict(row)
    item["rollback_version"] = deployment_rows.rollback_target(db, row["model"])
    item["serving_url"] = serving.get("url")
    return item
