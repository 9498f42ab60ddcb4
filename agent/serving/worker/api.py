"""The worker's routes other than inference: health, metadata, feedback, metrics.

Health routes need no token. Model routes and ``/metrics`` need a predict
token when ``serving.predict_token_sha256`` lists any. Errors use the
agent's shape, ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from starlette.concurrency import run_in_threadpool

from agent.api._errors import error_response, install_error_handlers
from agent.serving.worker import protocol
from agent.serving.worker.app import (
    Authorizer,
    RecentRequests,
    choose_version,
    read_body,
    unknown_model,
)
from agent.serving.worker.loader import ServedVersion
from agent.serving.worker.metrics import ServingMetrics
from agent.serving.worker.protocol import InferenceError
from agent.serving.worker.router import ModelRouter, Route
from agent.versions import software_versions
from store import Store, StoreBusyError
from store import predictions as prediction_rows

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_LABEL_CHARS = 200


def build_api(
    store: Store,
    router: ModelRouter,
    metrics: ServingMetrics,
    recent: RecentRequests,
    authorizer: Authorizer,
    max_body_bytes: int,
) -> FastAPI:
    app = FastAPI(
        title="rigdeck serving worker",
        version=software_versions()["rigdeck"] or "0",
        description="Open Inference Protocol v2 endpoints of a rigdeck agent.",
    )
    install_error_handlers(app)

    @app.exception_handler(InferenceError)
    async def _inference_error(request: Request, error: InferenceError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    def route_of(request: Request, name: str) -> Route:
        authorizer.check(request.headers.get("authorization"))
        route = router.routes.get(name)
        if route is None:
            raise unknown_model(name, router.routes)
        return route

    @app.get("/v2", summary="Server metadata")
    def server_metadata() -> dict:
        return {
            "name": "rigdeck",
            "version": software_versions()["rigdeck"] or "0",
            "extensions": [],
        }

    @app.get("/v2/health/live", summary="Liveness; needs no token")
    def live() -> dict:
        return {"live": True}

    @app.get("/v2/health/ready", summary="Readiness: every deployed model loaded")
    def ready() -> JSONResponse:
        problems = {
            name: list(route.problems)
            for name, route in router.routes.items()
            if route.stable is None
        }
        ok = router.ready()
        return JSONResponse(
            {"ready": ok, "models": sorted(router.routes), "unavailable": problems},
            status_code=200 if ok else 503,
        )

    @app.get("/v2/models/{name}", summary="Model metadata")
    def model_metadata(request: Request, name: str) -> dict:
        route = route_of(request, name)
        served = route.stable or route.canary
        if served is None:
            choose_version(route, None, 1.0)
        return _metadata(route, served)

    @app.get("/v2/models/{name}/versions/{version}", summary="Version metadata")
    def version_metadata(request: Request, name: str, version: str) -> dict:
        route = route_of(request, name)
        return _metadata(route, choose_version(route, version, 1.0))

    @app.get("/v2/models/{name}/ready", summary="Whether the model can answer")
    def model_ready(request: Request, name: str) -> JSONResponse:
        route = route_of(request, name)
        ok = route.stable is not None
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2/models/{name}/versions/{version}/ready", summary="Version readiness")
    def version_ready(request: Request, name: str, version: str) -> dict:
        route = route_of(request, name)
        choose_version(route, version, 1.0)
        return {"name": name, "version": version, "ready": True}

    @app.post("/v2/models/{name}/feedback", summary="Store labels for a request")
    async def feedback(request: Request, name: str) -> dict:
        authorizer.check(request.headers.get("authorization"))
        body = await read_body(request.scope, request.receive, max_body_bytes)
        request_id, labels = _parse_feedback(protocol.parse_json(body))
        rows = await _logged_rows(store, recent, name, request_id)
        if len(labels) != rows:
            raise InferenceError(
                422,
                "invalid_labels",
                f"Request {request_id!r} had {rows} rows; send {rows} labels (got "
                f"{len(labels)}), in row order.",
            )
        keyed = [
            (prediction_rows.row_key(request_id, index, rows), label)
            for index, label in enumerate(labels)
        ]
        await run_in_threadpool(_store_feedback, store, name, keyed)
        metrics.feedback_labels.labels(name).inc(len(keyed))
        return {"id": request_id, "model_name": name, "labels": len(keyed)}

    @app.get("/metrics", summary="Prometheus text")
    def prometheus(request: Request) -> Response:
        authorizer.check(request.headers.get("authorization"))
        return Response(
            generate_latest(metrics.registry), media_type=METRICS_CONTENT_TYPE
        )

    return app


def _metadata(route: Route, served: ServedVersion) -> dict[str, Any]:
    versions = [
        str(version.number) for version in (route.stable, route.canary) if version
    ]
    return {
        "name": route.model,
        "versions": versions,
        "platform": served.recipe,
        "inputs": [
            {
                "name": protocol.INPUT_NAME,
                "datatype": protocol.INPUT_DATATYPE,
                "shape": [-1, served.feature_count],
                "parameters": {"feature_names": list(served.feature_names)},
            }
        ],
        "outputs": [
            {"name": "label", "datatype": served.label_datatype, "shape": [-1]},
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [-1, len(served.classes)],
            },
        ],
        "parameters": {
            "version": str(served.number),
            "feature_names": list(served.feature_names),
            "classes": list(served.classes),
            "stable_version": route.stable.number if route.stable else None,
            "canary_version": route.canary.number if route.canary else None,
            "canary_weight": route.canary_weight,
        },
    }


def _parse_feedback(payload: Any) -> tuple[str, list[str]]:
    if not isinstance(payload, dict):
        raise InferenceError(
            422,
            "invalid_request",
            'The feedback body must be a JSON object: {"id": ..., "label": ...} or '
            '{"id": ..., "labels": [...]}.',
        )
    unknown = sorted(set(payload) - {"id", "label", "labels"})
    if unknown:
        raise InferenceError(
            422, "invalid_request", f"Unknown feedback field {unknown[0]!r}."
        )
    request_id = payload.get("id")
    if not isinstance(request_id, str) or not protocol.REQUEST_ID_PATTERN.match(
        request_id
    ):
        raise InferenceError(
            422,
            "invalid_request",
            f"id {request_id!r} is not a request id; send the 'id' of the inference "
            "response.",
        )
    if ("label" in payload) == ("labels" in payload):
        raise InferenceError(
            422,
            "invalid_labels",
            "Send either 'label' (one row) or 'labels' (one per row), not both or "
            "neither.",
        )
    labels = payload["labels"] if "labels" in payload else [payload["label"]]
    if not isinstance(labels, list) or not labels:
        raise InferenceError(
            422, "invalid_labels", "'labels' must be a non-empty list, one per row."
        )
    return request_id, [_label(label, index) for index, label in enumerate(labels)]


def _label(value: Any, index: int) -> str:
    valid = (
        isinstance(value, bool | int)
        or (isinstance(value, float) and math.isfinite(value))
        or (isinstance(value, str) and 0 < len(value.strip()) <= MAX_LABEL_CHARS)
    )
    if not valid:
        raise InferenceError(
            422,
            "invalid_labels",
            f"Label {index} is {value!r}; a label is an integer, a finite number or "
            f"a non-empty string of at most {MAX_LABEL_CHARS} characters.",
        )
    return prediction_rows.label_text(value)


async def _logged_rows(
    store: Store, recent: RecentRequests, model: str, request_id: str
) -> int:
    known = recent.lookup(model, request_id)
    if known is not None:
        rows, logged = known
        if not logged:
            raise InferenceError(
                409,
                "not_logged",
                f"Request {request_id!r} was not logged (serving.log_sample_rate "
                "is below 1), so a label for it cannot be used.",
            )
        return rows
    rows = await run_in_threadpool(
        prediction_rows.request_rows, store.db, model, request_id
    )
    if rows == 0:
        raise InferenceError(
            404,
            "not_found",
            f"No logged request {request_id!r} for model {model!r}; send the 'id' "
            "of an inference response of this model.",
        )
    return rows


def _store_feedback(store: Store, model: str, keyed: list[tuple[str, str]]) -> None:
    try:
        with store.write() as db:
            prediction_rows.insert_feedback(db, model, keyed, time.time())
    except prediction_rows.DuplicateFeedbackError as error:
        raise InferenceError(409, "duplicate_feedback", str(error)) from None
    except StoreBusyError as error:
        raise InferenceError(503, "store_busy", str(error)) from None
