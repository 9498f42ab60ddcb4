"""One error shape for every failure: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.errors import ApiError

logger = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "invalid_request",
}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(
            422, "invalid_request", describe_validation(error.errors())
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(error.status_code, "error")
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = (
                f"No route {request.method} {request.url.path}; see /docs for the API."
            )
        return error_response(error.status_code, code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal_error", "The agent failed on this request; see its log."
        )


def describe_validation(problems: list[dict[str, Any]]) -> str:
    parts = []
    for problem in problems:
        location = ".".join(str(p) for p in problem["loc"] if p != "body") or "body"
        message = problem["msg"]
        value = problem.get("input")
        if isinstance(value, bytes):
            parts.append(
                "The request body must be a JSON object sent with "
                "'Content-Type: application/json'."
            )
            continue
        if problem["type"] == "json_invalid":
            parts.append(
                f"The request body is not valid JSON: {problem['ctx'].get('error')}."
            )
            continue
        shown = (
            ""
            if isinstance(value, dict | list) or value is None
            else f" (got {value!r})"
        )
        parts.append(f"{location}: {message}{shown}")
    return "; ".join(parts)
