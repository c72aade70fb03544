"""One JSON error envelope for every failure: ``{"error": {"code", "message", "details"}}``.

Validation errors say which field is wrong and what it must be; unexpected errors are logged with
their traceback and answered with a generic message (never the exception text).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.errors import BundleError, InputError, PodskazkaError
from serve.pool import Busy

log = logging.getLogger(__name__)


def envelope(
    status: int, code: str, message: str, details: list | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        headers=headers,
        content={"error": {"code": code, "message": message, "details": details or []}},
    )


def _field(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    details = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return envelope(
                400,
                "malformed_json",
                "the request body is not valid JSON: "
                f"{err.get('ctx', {}).get('error', 'parse error')}; send a JSON object",
            )
        field = _field(err.get("loc", ()))
        details.append({"field": field, "problem": err.get("msg", "invalid"), "type": err.get("type")})
    summary = "; ".join(f"{d['field']}: {d['problem']}" for d in details[:5])
    return envelope(422, "invalid_request", f"the request is invalid: {summary}", details)


async def _podskazka_handler(request: Request, exc: PodskazkaError) -> JSONResponse:
    status = 422 if isinstance(exc, InputError) else 503 if isinstance(exc, BundleError) else 400
    status = getattr(exc, "http_status", status)  # e.g. serve.feedback_store.StoreError: 503, retry later
    return envelope(status, exc.code, exc.message, exc.details)


async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        503: "not_ready",
    }
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    allow = (exc.headers or {}).get("Allow")
    if exc.status_code == 405 and allow:
        message = f"{request.method} is not allowed on {request.url.path}; use {allow}"
    # the exception's headers go out too: Allow on a 405, WWW-Authenticate on a 401
    return envelope(exc.status_code, codes.get(exc.status_code, "http_error"), message, headers=exc.headers)


async def _busy_handler(request: Request, exc: Busy) -> JSONResponse:
    return envelope(503, "busy", exc.message, headers={"Retry-After": str(exc.retry_after)})


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return envelope(500, "internal_error", "the server failed to handle this request; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(PodskazkaError, _podskazka_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Busy, _busy_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
