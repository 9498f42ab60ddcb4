"""Audit log (viewer), alerts (viewer, acknowledge: operator), tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.errors import ApiError
from store import alerts as alert_rows
from store import audit
from store import tokens as token_rows

router = APIRouter(prefix="/api/v1")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Reason(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=NAME_PATTERN)
    role: str = Field(..., pattern=r"^(viewer|operator|approver|admin)$")
    reason: str | None = Field(None, max_length=2000)


@router.get("/audit", summary="Audit entries, oldest first")
def list_audit(
    request: Request,
    since: float | None = Query(None, ge=0, description="Unix seconds."),
    actor: str | None = Query(None, max_length=64),
    cursor: int | None = Query(
        None, ge=0, le=MAX_ID, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    items = audit.list_entries(
        db, since=since, actor=actor, after_id=cursor, limit=limit
    )
    return page(items, limit)


@router.get("/audit/verify", summary="Check the audit hash chain")
def verify_audit(
    request: Request, principal: Principal = Depends(require("viewer"))
) -> dict:
    result = audit.verify_chain(request.app.state.context.store.db)
    return {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_id": result.first_bad_id,
        "message": result.message,
    }


@router.get("/alerts", summary="Alerts, newest first")
def list_alerts(
    request: Request,
    open_only: bool = Query(False, alias="open", description="Only unacknowledged."),
    cursor: int | None = Query(None, ge=0, le=MAX_ID),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    items = alert_rows.list_alerts(
        db, open_only=open_only, before_id=cursor, limit=limit
    )
    return page(items, limit)


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
def acknowledge_alert(
    request: Request,
    alert_id: int = Path(..., ge=1, le=MAX_ID),
    body: Reason | None = None,
    principal: Principal = Depends(require("operator")),
) -> dict:
    store = request.app.state.context.store
    with store.write() as db:
        before = alert_rows.get_alert(db, alert_id)
        if before is None:
            raise ApiError(404, "not_found", f"No alert with id {alert_id}.")
        if before["acknowledged_at"] is None:
            alert_rows.acknowledge(db, alert_id, principal.name)
            after = alert_rows.get_alert(db, alert_id)
            audit.append_entry(
                db,
                actor=principal.name,
                action="alert.acknowledge",
                target=f"alert/{alert_id}",
                reason=body.reason if body else None,
                before={"acknowledged_by": None},
                after={"acknowledged_by": after["acknowledged_by"]},
            )
    return alert_rows.get_alert(store.db, alert_id)


@router.get("/tokens", summary="Tokens without their secrets (admin)")
def list_tokens(
    request: Request, principal: Principal = Depends(require("admin"))
) -> dict:
    items = token_rows.list_tokens(request.app.state.context.store.db)
    return {"items": items, "next_cursor": None}


@router.post("/tokens", status_code=201, summary="Create a token; shown once (admin)")
def create_token(
    request: Request,
    body: TokenRequest,
    principal: Principal = Depends(require("admin")),
) -> dict:
    with request.app.state.context.store.write() as db:
        if token_rows.get_token(db, body.name) is not None:
            raise ApiError(
                409,
                "conflict",
                f"A token named {body.name!r} exists; pick another name.",
            )
        token, row = token_rows.create_token(db, body.name, body.role)
        audit.append_entry(
            db,
            actor=principal.name,
            action="token.create",
            target=f"token/{body.name}",
            reason=body.reason,
            after={"role": body.role},
        )
    return {**row, "token": token}


@router.delete("/tokens/{name}", summary="Revoke a token (admin)")
def revoke_token(
    request: Request,
    name: str = Path(..., pattern=NAME_PATTERN),
    principal: Principal = Depends(require("admin")),
) -> dict:
    with request.app.state.context.store.write() as db:
        row = token_rows.get_token(db, name)
        if row is None:
            raise ApiError(404, "not_found", f"No token named {name!r}.")
        if row["revoked_at"] is None:
            token_rows.revoke_token(db, name)
            audit.append_entry(
                db,
                actor=principal.name,
                action="token.revoke",
                target=f"token/{name}",
                before={"revoked": False},
                after={"revoked": True},
            )
    return token_rows.get_token(request.app.state.context.store.db, name)
