"""Jobs and runs (trigger, cancel: operator), models and versions (override: admin)."""

from __future__ import annotations

import codecs
import os
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api._auth import Principal, require
from agent.api._pages import MAX_ID, limit_query, page
from agent.config import MODEL_NAME_PATTERN
from agent.errors import ApiError
from agent.training.errors import PlacementRefused, RunConflict, RunNotActive
from store import NotFoundError, audit
from store import jobs as job_rows
from store import runs as run_rows
from store import versions as version_rows
from store.runs import RunState
from store.versions import OverrideError

router = APIRouter(prefix="/api/v1")

# The largest chunk one log request returns. A client that follows the log
# requests the next chunk from next_offset.
LOG_CHUNK_BYTES = 65_536
_STATE_PATTERN = "^(" + "|".join(state.value for state in RunState) + ")$"


def _name(description: str):
    return Path(..., pattern=MODEL_NAME_PATTERN, description=description)


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000)


class OverrideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        ...,
        min_length=1,
        max_length=2000,
        description="Why the gates may be overridden.",
    )


# Jobs.


@router.get("/jobs", summary="Training jobs with their next fire time")
def list_jobs(
    request: Request,
    cursor: str | None = Query(
        None, max_length=64, description="next_cursor of the last page."
    ),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    context = request.app.state.context
    db = context.store.db
    items = []
    for job in job_rows.list_jobs(db, after_name=cursor, limit=limit):
        items.append(_job_item(context, db, job))
    return page(items, limit, cursor_key="name")


@router.get("/jobs/{job}", summary="One job with its trigger and fire counts")
def get_job(
    request: Request,
    job: str = _name("Job name (the model's name)."),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    context = request.app.state.context
    row = job_rows.get_job(context.store.db, job)
    if row is None:
        raise _unknown_job(context, job)
    return _job_item(context, context.store.db, row)


@router.get(
    "/jobs/{job}/fires",
    summary="A job's fires, newest first: started, missed, skipped, refused",
)
def list_fires(
    request: Request,
    job: str = _name("Job name (the model's name)."),
    outcome: str | None = Query(None, pattern="^(started|missed|skipped|refused)$"),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    context = request.app.state.context
    if job_rows.get_job(context.store.db, job) is None:
        raise _unknown_job(context, job)
    items = job_rows.list_fires(
        context.store.db, job, outcome=outcome, before_id=cursor, limit=limit
    )
    return page(items, limit)


@router.post(
    "/jobs/{job}/trigger",
    status_code=202,
    summary="Queue a run of the job now (operator)",
)
def trigger_job(
    request: Request,
    job: str = _name("Job name (the model's name)."),
    body: TriggerRequest | None = None,
    principal: Principal = Depends(require("operator")),
) -> dict:
    context = request.app.state.context
    try:
        return _training(context).runs.trigger(
            job, actor=principal.name, reason=body.reason if body else None
        )
    except KeyError:
        raise _unknown_job(context, job) from None
    except RunConflict as error:
        raise ApiError(409, "run_active", str(error)) from None
    except PlacementRefused as error:
        raise ApiError(
            409, "placement_refused", f"{error.message} Reason code: {error.reason}."
        ) from None


# Runs.


@router.get("/runs", summary="Runs, newest first, filtered by model and state")
def list_runs(
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
    items = run_rows.list_runs(
        db,
        model=model,
        states=(state,) if state else None,
        before_id=cursor,
        limit=limit,
    )
    return page([_run_item(db, run) for run in items], limit)


@router.get("/runs/{run_id}", summary="One run: state, progress, metrics, error")
def get_run(
    request: Request,
    run_id: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    return _run_item(db, _run_or_404(db, run_id))


@router.get("/runs/{run_id}/log", summary="A chunk of the run log from a byte offset")
def get_run_log(
    request: Request,
    run_id: int = Path(..., ge=1, le=MAX_ID),
    offset: int = Query(
        0,
        ge=0,
        le=MAX_ID,
        description="Byte offset to read from; next_offset of the last chunk.",
    ),
    limit_bytes: int = Query(
        LOG_CHUNK_BYTES,
        ge=1,
        le=LOG_CHUNK_BYTES,
        description="Maximum bytes to return.",
    ),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    run = _run_or_404(db, run_id)
    text, next_offset, size = _read_log(run.get("log_path"), offset, limit_bytes)
    return {
        "run_id": run_id,
        "offset": offset,
        "next_offset": next_offset,
        "size_bytes": size,
        "text": text,
        "running": run["state"] in (RunState.QUEUED, RunState.RUNNING),
        "state": run["state"],
    }


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    summary="Cancel a queued or running run (operator)",
)
def cancel_run(
    request: Request,
    run_id: int = Path(..., ge=1, le=MAX_ID),
    body: CancelRequest | None = None,
    principal: Principal = Depends(require("operator")),
) -> dict:
    context = request.app.state.context
    try:
        run = _training(context).runs.cancel(
            run_id, actor=principal.name, reason=body.reason if body else None
        )
    except NotFoundError:
        raise ApiError(404, "not_found", f"No run with id {run_id}.") from None
    except RunNotActive as error:
        raise ApiError(409, "run_finished", str(error)) from None
    return _run_item(context.store.db, run)


# Models and versions.


@router.get("/models", summary="Models with their latest and deployed versions")
def list_models(
    request: Request,
    cursor: str | None = Query(None, max_length=64),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    context = request.app.state.context
    configured = {model.name for model in context.config.models}
    items = []
    for model in version_rows.list_models(
        context.store.db, after_name=cursor, limit=limit
    ):
        config = model.pop("config")
        model["configured"] = model["name"] in configured
        model["description"] = config.get("description", "")
        model["job"] = model["name"] if model["configured"] else None
        items.append(model)
    return page(items, limit, cursor_key="name")


@router.get(
    "/models/{name}/versions",
    summary="A model's versions, newest first, with metrics, gates and lineage",
)
def list_versions(
    request: Request,
    name: str = _name("Model name."),
    cursor: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = limit_query(),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    _model_or_404(db, name)
    items = version_rows.list_versions(db, name, before_number=cursor, limit=limit)
    return page([_version_item(item) for item in items], limit, cursor_key="number")


@router.get(
    "/models/{name}/versions/{number}", summary="One version, with reference statistics"
)
def get_version(
    request: Request,
    name: str = _name("Model name."),
    number: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    _model_or_404(db, name)
    try:
        return _version_item(version_rows.get_version(db, name, number))
    except NotFoundError as error:
        raise ApiError(
            404, "not_found", f"{error} See GET /api/v1/models/{name}/versions."
        ) from None


@router.post(
    "/models/{name}/versions/{number}/override",
    summary="Let a version whose gates failed be released (admin; reason required)",
)
def override_version(
    request: Request,
    body: OverrideRequest,
    name: str = _name("Model name."),
    number: int = Path(..., ge=1, le=MAX_ID),
    principal: Principal = Depends(require("admin")),
) -> dict:
    store = request.app.state.context.store
    _model_or_404(store.db, name)
    with store.write() as db:
        try:
            version_rows.override_gates(db, name, number, principal.name, body.reason)
        except NotFoundError as error:
            raise ApiError(404, "not_found", str(error)) from None
        except OverrideError as error:
            raise ApiError(409, "not_failed", str(error)) from None
        audit.append_entry(
            db,
            actor=principal.name,
            action="version.override",
            target=f"model/{name}/version/{number}",
            reason=body.reason,
            before={"gate_state": "failed"},
            after={"gate_state": "overridden"},
        )
    return _version_item(version_rows.get_version(store.db, name, number))


# Helpers.


def _training(context):
    if context.training is None:
        raise ApiError(
            503, "training_unavailable", "Training is not running on this agent."
        )
    return context.training


def _job_item(context, db, job: dict[str, Any]) -> dict[str, Any]:
    live = context.training.scheduler.job_info(job["name"]) if context.training else {}
    last = job_rows.list_fires(db, job["name"], limit=1)
    model = context.config.model(job["name"])
    return {
        "name": job["name"],
        "model": job["model"],
        "configured": model is not None,
        "trigger": job["trigger"],
        "on_start": model.schedule.on_start if model else False,
        **live,
        "last_fire": last[0] if last else None,
        "fire_counts": job_rows.fire_counts(db, job["name"]),
        "active_run": _active_run_id(db, job["model"]),
    }


def _active_run_id(db, model: str) -> int | None:
    run = run_rows.active_run_of_model(db, model)
    return run["id"] if run else None


def _run_item(db, run: dict[str, Any]) -> dict[str, Any]:
    item = dict(run)
    item["version"] = version_rows.version_of_run(db, run["id"])
    return item


def _version_item(version: dict[str, Any]) -> dict[str, Any]:
    item = dict(version)
    item["releasable"], item["releasable_reason"] = version_rows.releasable(version)
    return item


def _run_or_404(db, run_id: int) -> dict[str, Any]:
    run = run_rows.find_run(db, run_id)
    if run is None:
        raise ApiError(
            404, "not_found", f"No run with id {run_id}; see GET /api/v1/runs."
        )
    return run


def _model_or_404(db, name: str) -> None:
    if not db.conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone():
        known = [
            row[0] for row in db.conn.execute("SELECT name FROM models ORDER BY name")
        ]
        raise ApiError(
            404,
            "not_found",
            f"No model named {name!r}. Known models: {', '.join(known) or 'none'}.",
        )


def _unknown_job(context, job: str) -> ApiError:
    known = [model.name for model in context.config.models]
    return ApiError(
        404,
        "not_found",
        f"No job named {job!r}; each model in agent.toml has a job of the same name. "
        f"Known jobs: {', '.join(known) or 'none'}.",
    )


def _read_log(
    log_path: str | None, offset: int, limit_bytes: int
) -> tuple[str, int, int]:
    """Read up to ``limit_bytes`` from ``offset``, ending on a UTF-8 boundary."""
    if not log_path or not os.path.exists(log_path):
        if offset > 0:
            raise ApiError(
                400,
                "invalid_parameter",
                f"offset={offset} is past the end of the log (0 bytes).",
            )
        return "", 0, 0
    with open(log_path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if offset > size:
            raise ApiError(
                400,
                "invalid_parameter",
                f"offset={offset} is past the end of the log ({size} bytes); use "
                "next_offset.",
            )
        handle.seek(offset)
        chunk = handle.read(limit_bytes)
        text, pending = _decode(chunk)
        if not text and pending:
            # The limit is smaller than the first character: return that
            # whole character, so a reader that follows next_offset advances.
            chunk += handle.read(4 - pending)
            text, pending = _decode(chunk)
    # A character cut off at the end stays for the next request.
    return text, offset + len(chunk) - pending, size


def _decode(chunk: bytes) -> tuple[str, int]:
    """Decode UTF-8; return the text and how many trailing bytes wait for more."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(chunk)
    return text, len(decoder.getstate()[0])
