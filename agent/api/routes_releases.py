"""Releases (request: operator; approve, reject, promote, abort: approver) and rollback.

Every action takes a reason and is carried out by ``ReleaseController``
in one transaction with its audit entry. The response is the release,
or for a rollback the deployment change. Errors name the release, model
or version and the state that blocked the action.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.config import MODEL_NAME_PATTERN
from agent.errors import ApiError
from agent.releases import ReleaseController, ReleaseError
from store import deployments as deployment_rows
from store import releases as release_rows
from store.releases import ReleaseState

router = APIRouter(prefix="/api/v1")

_STATE_PATTERN = "^(" + "|".join(state.value for state in ReleaseState) + ")$"


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(..., pattern=MODEL_NAME_PATTERN, description="Model name.")
    version: int = Field(..., ge=1, description="Version number to release.")
    reason: str = Field(
        ..., min_length=1, max_length=2000, description="Why it should be released."
    )


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=2000, description="Why.")


@router.get("/releases", summary="Releases, newest first, filtered by model and state")
def list_releases(
    request: Request,
    model: str | None = Query(None, pattern=MODEL_NAME_PATTERN),
    state: str | None = Query(None, pattern=_STATE_PATTERN),
    cursor: int | None = Query(
        None, ge=1, le=MAX_ID, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    items = release_rows.list_releases(
        db, model=model, state=state, before_id=cursor, limit=limit
    )
    return page(items, limit)


@router.post(
    "/releases", status_code=201, summary="Request a release of a version (operator)"
)
def request_release(
    request: Request,
    body: ReleaseRequest,
    principal: Principal = Depends(require("operator")),
) -> dict:
    controller = _controller(request)
    return _run(
        lambda: controller.request(
            body.model, body.version, principal.name, body.reason
        )
    )


@router.get(
    "/releases/{release_id}", summary="One release with its approvals and verdict"
)
def get_release(
    request: Request,
    release_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    release = release_rows.find_release(request.app.state.context.store.db, release_id)
    if release is None:
        raise ApiError(
            404,
            "not_found",
            f"No release with id {release_id}; see GET /api/v1/releases.",
        )
    return release


@router.post("/releases/{release_id}/approve", summary="Approve a release (approver)")
def approve_release(
    request: Request,
    body: ReasonBody,
    release_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("approver")),
) -> dict:
    controller = _controller(request)
    return _run(lambda: controller.approve(release_id, principal.name, body.reason))


@router.post("/releases/{release_id}/reject", summary="Reject a release (approver)")
def reject_release(
    request: Request,
    body: ReasonBody,
    release_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("approver")),
) -> dict:
    controller = _controller(request)
    return _run(lambda: controller.reject(release_id, principal.name, body.reason))


@router.post(
    "/releases/{release_id}/promote", summary="Promote a canary to stable (approver)"
)
def promote_release(
    request: Request,
    body: ReasonBody,
    release_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("approver")),
) -> dict:
    controller = _controller(request)
    return _run(lambda: controller.promote(release_id, principal.name, body.reason))


@router.post(
    "/releases/{release_id}/abort", summary="Abort an approved release or a canary"
)
def abort_release(
    request: Request,
    body: ReasonBody,
    release_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("approver")),
) -> dict:
    controller = _controller(request)
    return _run(lambda: controller.abort(release_id, principal.name, body.reason))


@router.post(
    "/models/{name}/rollback",
    summary="Return production to the last known-good version (operator)",
)
def rollback_model(
    request: Request,
    body: ReasonBody,
    name: str = Path(..., pattern=MODEL_NAME_PATTERN, description="Model name."),
    principal: Principal = Depends(require("operator")),
) -> dict:
    controller = _controller(request)
    change = _run(lambda: controller.rollback(name, principal.name, body.reason))
    deployment = deployment_rows.get_deployment(
        request.app.state.context.store.db, name
    )
    return {"model": name, "deployment": deployment, "change": change}


def _controller(request: Request) -> ReleaseController:
    releases = request.app.state.context.releases
    if releases is None:
        raise ApiError(
            503, "unavailable", "The release controller is not running on this agent."
        )
    return releases.controller


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except ReleaseError as error:
        raise ApiError(error.status, error.code, str(error)) from None
