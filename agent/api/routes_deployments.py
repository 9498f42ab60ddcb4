"""Deployments and the serving worker (viewer)."""

from __future__ import annotations

import math
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.config import MODEL_NAME_PATTERN
from agent.errors import ApiError
from store import deployments as deployment_rows
from store import predictions as prediction_rows

router = APIRouter(prefix="/api/v1")

LIVE_WINDOW_DEFAULT_SECONDS = 300.0
LIVE_WINDOW_MIN_SECONDS = 10.0
# An hour of traffic at thousands of rows a second already takes a core
# hundreds of milliseconds to summarise, and any viewer may ask.
LIVE_WINDOW_MAX_SECONDS = 3_600.0


def _window_seconds(value: Any) -> float:
    """Parse ``window_seconds`` so that every rejection names the allowed range."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    # NaN fails both comparisons, so it is rejected here too.
    if not LIVE_WINDOW_MIN_SECONDS <= seconds <= LIVE_WINDOW_MAX_SECONDS:
        raise PydanticCustomError(
            "window_seconds_range",
            f"Input should be a number of seconds from {LIVE_WINDOW_MIN_SECONDS:g} "
            f"to {LIVE_WINDOW_MAX_SECONDS:g}",
        )
    return seconds


WindowSeconds = Annotated[
    float,
    BeforeValidator(_window_seconds),
    Query(
        description="Seconds of traffic to summarise, counted back from now: a "
        f"number from {LIVE_WINDOW_MIN_SECONDS:g} to {LIVE_WINDOW_MAX_SECONDS:g}.",
        json_schema_extra={
            "minimum": LIVE_WINDOW_MIN_SECONDS,
            "maximum": LIVE_WINDOW_MAX_SECONDS,
        },
    ),
]


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
    _require_deployment(db, name)
    items = deployment_rows.list_history(db, name, before_id=cursor, limit=limit)
    return page(items, limit)


@router.get(
    "/deployments/{name}/live",
    summary="Live request, error and latency figures of the stable and canary versions",
)
def deployment_live(
    request: Request,
    name: str = Path(..., pattern=MODEL_NAME_PATTERN, description="Model name."),
    window_seconds: WindowSeconds = LIVE_WINDOW_DEFAULT_SECONDS,
    principal: Principal = Depends(require("viewer")),
) -> dict:
    """Summarise the traffic each deployed version served in the window.

    ``stable`` and ``canary`` are null when the deployment has no such
    version. Otherwise each contains the version number and the statistics
    of ``store.predictions.version_stats`` over the logged predictions with
    a timestamp at or after ``since``.
    """
    db = request.app.state.context.store.db
    deployment = _require_deployment(db, name)
    since = time.time() - window_seconds
    return {
        "model": name,
        "window_seconds": window_seconds,
        "since": since,
        "stable": _live_stats(db, name, deployment["stable_version"], since),
        "canary": _live_stats(db, name, deployment["canary_version"], since),
    }


@router.get("/serving", summary="The serving worker: state, pid, port, URL, restarts")
def serving_status(
    request: Request, principal: Principal = Depends(require("viewer"))
) -> dict:
    return _serving_status(request.app.state.context)


def _require_deployment(db: Any, name: str) -> dict[str, Any]:
    deployment = deployment_rows.get_deployment(db, name)
    if deployment is None:
        raise ApiError(
            404,
            "not_found",
            f"Model {name!r} has no deployment; see GET /api/v1/deployments.",
        )
    return deployment


def _live_stats(
    db: Any, model: str, version: int | None, since: float
) -> dict[str, Any] | None:
    if version is None:
        return None
    stats = prediction_rows.version_stats(db, model, version, since)
    return {"version": version, **stats}


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
