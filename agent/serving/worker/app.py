"""The worker's ASGI application: a lean inference path in front of FastAPI.

``POST /v2/models/{name}/infer`` (and its ``/versions/{n}/infer`` form)
is handled here directly, without FastAPI's routing, dependency solving
and response serialisation, because it is the one route under load.
Everything else (health, metadata, feedback, metrics) is an ordinary
FastAPI app in ``agent.serving.worker.api``.

Per request the hot path checks the token, reads the route once, picks
stable or canary by weight, validates the body against that version's
features, runs the forward pass on the event loop, sends the response,
then counts it and queues it for logging.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from agent.serving.spec import WorkerSpec
from agent.serving.worker import protocol
from agent.serving.worker.loader import ServedVersion
from agent.serving.worker.logbook import LoggedRequest, PredictionLog
from agent.serving.worker.metrics import ServingMetrics
from agent.serving.worker.protocol import InferenceError
from agent.serving.worker.router import ModelRouter, Route

logger = logging.getLogger(__name__)

RECENT_REQUESTS = 100_000
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class RecentRequests:
    """The latest answered requests: their row count and whether they were logged.

    Feedback for a request still in the logging queue is checked here, and
    a client id that repeats a recent one is rejected, because feedback is
    keyed by request id.
    """

    capacity: int = RECENT_REQUESTS

    def __post_init__(self) -> None:
        self._entries: collections.OrderedDict[tuple[str, str], tuple[int, bool]] = (
            collections.OrderedDict()
        )

    def remember(self, model: str, request_id: str, rows: int, logged: bool) -> None:
        self._entries[(model, request_id)] = (rows, logged)
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def lookup(self, model: str, request_id: str) -> tuple[int, bool] | None:
        return self._entries.get((model, request_id))


class Authorizer:
    """Checks ``Authorization: Bearer`` against the configured token digests."""

    def __init__(self, digests: tuple[str, ...]) -> None:
        self.digests = frozenset(digests)

    @property
    def required(self) -> bool:
        return bool(self.digests)

    def check(self, header: str | None) -> None:
        """Raise InferenceError 401 unless the header carries an accepted token."""
        if not self.digests:
            return
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InferenceError(
                401,
                "unauthenticated",
                "This endpoint needs a predict token: send 'Authorization: Bearer "
                "<token>'.",
            )
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        if digest not in self.digests:
            raise InferenceError(
                401,
                "invalid_token",
                "The bearer token is not a predict token of this agent; ask an "
                "admin for one (serving.predict_token_sha256).",
            )


class WorkerApp:
    """ASGI entry point: inference here, every other route to ``api``."""

    def __init__(
        self,
        spec: WorkerSpec,
        router: ModelRouter,
        log: PredictionLog,
        metrics: ServingMetrics,
        recent: RecentRequests,
        authorizer: Authorizer,
        api: Any,
    ) -> None:
        self.spec = spec
        self.router = router
        self.log = log
        self.metrics = metrics
        self.recent = recent
        self.authorizer = authorizer
        self.api = api
        self._random = random.random

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            target = infer_target(scope["path"])
            if target is not None:
                await self._infer(scope, receive, send, *target)
                return
        await self.api(scope, receive, send)

    async def _infer(
        self, scope: Scope, receive: Receive, send: Send, name: str, pinned: str | None
    ) -> None:
        started = time.perf_counter()
        metric_model, version = "", ""
        entry = None
        try:
            self.authorizer.check(_header(scope, b"authorization"))
            route = self.router.routes.get(name)
            if route is None:
                raise unknown_model(name, self.router.routes)
            metric_model = name
            served = choose_version(route, pinned, self._random())
            body = await read_body(scope, receive, self.spec.max_body_bytes)
            request = protocol.parse_infer_request(
                protocol.parse_json(body),
                served.feature_names,
                self.spec.max_batch_rows,
            )
            self._check_repeated_id(name, request)
            version = str(served.number)
            status, encoded, entry = self._predict(name, served, request, body)
        except InferenceError as error:
            status, encoded = error.status, error_body(error.code, error.message)
        latency = time.perf_counter() - started
        await send_json(send, status, encoded)
        self.metrics.observe(metric_model, version, status, latency)
        if entry is not None:
            self._record(entry._replace(latency_seconds=latency))

    def _predict(
        self,
        name: str,
        served: ServedVersion,
        request: protocol.InferRequest,
        body: bytes,
    ) -> tuple[int, bytes, LoggedRequest]:
        try:
            probabilities = served.predict(request.features)
        except Exception as error:
            # The model itself failed: answer 500, and log the request so the
            # canary analysis counts it against this version.
            logger.exception(
                "version %s of model %s failed on request %s",
                served.number,
                name,
                request.request_id,
            )
            entry = _entry(name, served, request, body, 500)
            message = (
                f"Version {served.number} of model {name!r} failed on this request: "
                f"{type(error).__name__}. The worker log has the traceback."
            )
            return 500, error_body("model_failed", message), entry
        encoded, labels, nonfinite = protocol.encode_response(
            name,
            served.number,
            served.label_datatype,
            served.classes,
            request,
            probabilities,
        )
        if nonfinite:
            self.metrics.nonfinite_rows.labels(name, str(served.number)).inc(
                len(nonfinite)
            )
        # The log writer copies the probabilities from the response when it
        # carries them, and gets the array only when the client left them out.
        answered = "probabilities" in request.outputs
        entry = _entry(
            name,
            served,
            request,
            body,
            200,
            labels=labels,
            response_body=encoded if answered else None,
            probabilities=None if answered else probabilities,
            nonfinite=nonfinite,
        )
        return 200, encoded, entry

    def _check_repeated_id(self, name: str, request: protocol.InferRequest) -> None:
        if request.client_id and self.recent.lookup(name, request.request_id):
            raise InferenceError(
                409,
                "duplicate_id",
                f"Request id {request.request_id!r} was already used for model "
                f"{name!r}; feedback is keyed by request id, so send a new one or "
                "leave id out.",
            )

    def _record(self, entry: LoggedRequest) -> None:
        logged = self._random() < self.spec.log_sample_rate
        self.recent.remember(entry.model, entry.request_id, entry.rows, logged)
        if logged:
            self.log.record(entry)


def infer_target(path: str) -> tuple[str, str | None] | None:
    """Return (model, pinned version) for an inference path, else None."""
    parts = path.split("/")
    # ['', 'v2', 'models', NAME, 'infer'] or [..., NAME, 'versions', N, 'infer']
    if len(parts) < 5 or parts[1] != "v2" or parts[2] != "models":
        return None
    if len(parts) == 5 and parts[4] == "infer":
        return parts[3], None
    if len(parts) == 7 and parts[4] == "versions" and parts[6] == "infer":
        return parts[3], parts[5]
    return None


def choose_version(route: Route, pinned: str | None, draw: float) -> ServedVersion:
    """Return the version that answers: the pinned one, else stable or canary."""
    if pinned is not None:
        served = route.version(int(pinned)) if pinned.isdigit() else None
        if served is None:
            raise InferenceError(
                404,
                "not_found",
                f"Model {route.model!r} does not serve version {pinned!r}; it serves "
                f"{route.describe()}.",
            )
        return served
    served = route.pick(draw)
    if served is None:
        problems = " ".join(route.problems) or "Its deployment has no stable version."
        raise InferenceError(
            503,
            "model_unavailable",
            f"Model {route.model!r} has no loaded version to answer with. {problems}",
        )
    return served


def unknown_model(name: str, routes: dict[str, Route]) -> InferenceError:
    served = ", ".join(sorted(routes)) or "none"
    return InferenceError(
        404,
        "not_found",
        f"No model named {name[:80]!r} is served here. Served models: {served}.",
    )


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    """Read the request body; raise InferenceError 413 past ``max_bytes``."""
    declared = _header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(int(declared), max_bytes)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InferenceError(400, "disconnected", "The client disconnected.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise body_too_large(size, max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def body_too_large(size: int, max_bytes: int) -> InferenceError:
    return InferenceError(
        413,
        "payload_too_large",
        f"The request body has at least {size} bytes; the limit is {max_bytes} bytes "
        "(serving.max_body_bytes). Split the batch.",
    )


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _entry(
    name: str,
    served: ServedVersion,
    request: protocol.InferRequest,
    body: bytes,
    status: int,
    *,
    labels: list[Any] | None = None,
    response_body: bytes | None = None,
    probabilities: Any = None,
    nonfinite: list[int] | None = None,
) -> LoggedRequest:
    # The latency is filled in once the response is sent.
    return LoggedRequest(
        model=name,
        version=served.number,
        request_id=request.request_id,
        ts=time.time(),
        latency_seconds=0.0,
        status=status,
        rows=len(request.features),
        request_body=body,
        labels=labels,
        response_body=response_body,
        probabilities=probabilities,
        nonfinite_rows=nonfinite or [],
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None
