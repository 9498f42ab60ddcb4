"""Health (no token), host and telemetry (viewer)."""

from __future__ import annotations

import math
import platform
import time

from fastapi import APIRouter, Depends, Query, Request

from agent.api._auth import Principal, require
from agent.errors import ApiError
from agent.versions import software_versions
from store import telemetry as telemetry_rows

router = APIRouter(prefix="/api/v1")

# The same cap Prometheus puts on a range query's points.
MAX_POINTS = 11_000
# 9999-12-31T23:59:59Z: later times are typos, and SQLite cannot bucket them.
MAX_UNIX_SECONDS = 253_402_300_799
DEFAULT_RANGE_SECONDS = 3600.0


@router.get("/health", summary="Liveness of the agent; needs no token")
def health(request: Request) -> dict:
    context = request.app.state.context
    return {
        "status": "ok",
        "name": context.name,
        "version": software_versions()["rigdeck"],
        "uptime_seconds": round(time.time() - context.started_at, 3),
    }


@router.get("/whoami", summary="The calling token's name and role")
def whoami(principal: Principal = Depends(require("viewer"))) -> dict:
    return {"name": principal.name, "role": principal.role}


@router.get("/host", summary="This host: name, region, versions, latest sample")
def host(request: Request, principal: Principal = Depends(require("viewer"))) -> dict:
    context = request.app.state.context
    latest = context.sampler.latest if context.sampler else {}
    gpu = latest.get("gpu") or {
        "status": "unavailable",
        "reason": "not_sampled_yet",
        "message": "The first telemetry sample has not been taken yet.",
        "gpus": [],
    }
    return {
        "name": context.name,
        "region": context.config.agent.region,
        "hostname": platform.node(),
        "platform": platform.platform(),
        "software": software_versions(),
        "started_at": context.started_at,
        "sample_ts": latest.get("ts"),
        "cpu": latest.get("cpu"),
        "load": latest.get("load"),
        "memory": latest.get("memory"),
        "swap": latest.get("swap"),
        "disks": latest.get("disks"),
        "network": latest.get("network"),
        "gpu": gpu,
    }


@router.get("/telemetry/metrics", summary="Names of the metrics that have samples")
def telemetry_metrics(
    request: Request, principal: Principal = Depends(require("viewer"))
) -> dict:
    db = request.app.state.context.store.db
    return {"items": telemetry_rows.list_metrics(db), "next_cursor": None}


@router.get("/telemetry", summary="One metric over a time range, bucketed by step")
def telemetry(
    request: Request,
    metric: str = Query(..., description="Metric name, e.g. gpu_utilization_ratio."),
    since: float | None = Query(
        None, description="Start, Unix seconds. Default: an hour ago."
    ),
    until: float | None = Query(None, description="End, Unix seconds. Default: now."),
    step: float | None = Query(
        None, description="Bucket width in seconds. Default: the range over 300."
    ),
    principal: Principal = Depends(require("viewer")),
) -> dict:
    db = request.app.state.context.store.db
    _check_times(since=since, until=until)
    until = time.time() if until is None else until
    since = until - DEFAULT_RANGE_SECONDS if since is None else since
    _check_range(since, until)
    step = _resolve_step(since, until, step)
    known = telemetry_rows.list_metrics(db)
    if metric not in known:
        raise ApiError(
            404,
            "unknown_metric",
            f"No samples for metric {metric!r}. Known metrics: "
            f"{', '.join(known) or 'none yet'} (GET /api/v1/telemetry/metrics).",
        )
    series = telemetry_rows.query_series(db, metric, since, until, step)
    return {
        "metric": metric,
        "since": since,
        "until": until,
        "step": step,
        "columns": ["ts", "mean", "min", "max", "count"],
        "series": series,
    }


def _check_times(**times: float | None) -> None:
    for name, value in times.items():
        if value is None:
            continue
        if not math.isfinite(value) or not 0 <= value <= MAX_UNIX_SECONDS:
            raise ApiError(
                400,
                "invalid_parameter",
                f"{name}={value!r} is not a Unix time in seconds between 0 and "
                f"{MAX_UNIX_SECONDS} (the year 9999).",
            )


def _check_range(since: float, until: float) -> None:
    _check_times(since=since, until=until)
    if since >= until:
        raise ApiError(
            400,
            "invalid_parameter",
            f"since={since} is not before until={until}; give a start before the end.",
        )


def _resolve_step(since: float, until: float, step: float | None) -> float:
    if step is None:
        return max(1.0, math.ceil((until - since) / 300))
    if not math.isfinite(step) or step <= 0:
        raise ApiError(
            400,
            "invalid_parameter",
            f"step={step!r} must be a positive number of seconds.",
        )
    if (until - since) / step > MAX_POINTS:
        raise ApiError(
            400,
            "invalid_parameter",
            f"step={step} gives more than the {MAX_POINTS} points allowed over "
            f"{until - since:.0f} seconds; use a step of at least "
            f"{math.ceil((until - since) / MAX_POINTS)} seconds.",
        )
    return step
