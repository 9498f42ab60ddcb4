"""Build the FastAPI application around a running agent's context."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from agent.api import (
    routes_audit,
    routes_deployments,
    routes_drift,
    routes_health,
    routes_releases,
    routes_training,
)
from agent.api._auth import authenticate, require
from agent.api._errors import install_error_handlers
from agent.api._etag import ETagMiddleware
from agent.api._limits import BodySizeLimit
from agent.context import AgentContext
from agent.versions import software_versions

metrics_router = APIRouter()


@metrics_router.get("/metrics", summary="Prometheus text exposition")
def metrics(request: Request) -> Response:
    context: AgentContext = request.app.state.context
    if not context.config.api.metrics_open:
        require("viewer")(authenticate(request))
    from agent.telemetry.metrics import render_metrics

    body, content_type = render_metrics(context.sampler)
    return Response(content=body, media_type=content_type)


def create_app(
    context: AgentContext, extra_routers: tuple[APIRouter, ...] = ()
) -> FastAPI:
    app = FastAPI(
        title=f"rigdeck agent {context.name}",
        version=software_versions()["rigdeck"] or "0",
        description=(
            "Control API of a rigdeck agent. Send 'Authorization: Bearer <token>'."
        ),
        openapi_url="/api/v1/openapi.json",
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(ETagMiddleware)
    app.add_middleware(BodySizeLimit, max_bytes=context.config.api.max_body_bytes)
    app.include_router(routes_health.router)
    app.include_router(routes_audit.router)
    app.include_router(routes_training.router)
    app.include_router(routes_releases.router)
    app.include_router(routes_deployments.router)
    app.include_router(routes_drift.router)
    for router in extra_routers:
        app.include_router(router)
    app.include_router(metrics_router)
    return app
