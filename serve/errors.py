"""One JSON error envelope for every failure: ``{"error": {"code", "message", "details"}}``.

Validation errors say which field is wrong and what it must be; unexpected errors are logged with
their traceback and answered with a generic message (never the exception text).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from model.errors import BundleError, Detail, InputError, PodskazkaError
from serve.pool import Busy

log = logging.getLogger(__name__)


def envelope(
    status: int,
    code: str,
    message: str,
    details: Sequence[Detail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The error response: ``{"error": {"code", "message", "details"}}`` with ``status`` and ``headers``."""
    return JSONResponse(
        status_code=status,
        headers=headers,
        content={"error": {"code": code, "message": message, "details": details or []}},
    )


MAX_PROBLEMS_SUMMARISED = 5  # an invalid request's message names at most this many problems (details list all)


def field_path(loc: Sequence[int | str], *, skip: tuple[str, ...] = ("body",), root: str = "body") -> str:
    """A pydantic error location as a dotted path (``turns.0.role``) without the ``skip`` parts (FastAPI's
    ``body``); ``root`` names an error of the whole."""
    return ".".join(str(p) for p in loc if p not in skip) or root


def problems_summary(details: Sequence[Mapping[str, Any]]) -> str:
    """``field: problem; …`` for the first few validation problems, the message of an invalid request."""
    return "; ".join(f"{d['field']}: {d['problem']}" for d in details[:MAX_PROBLEMS_SUMMARISED])


async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return envelope(
                400,
                "malformed_json",
                "the request body is not valid JSON: "
                f"{err.get('ctx', {}).get('error', 'parse error')}; send a JSON object",
            )
        field = field_path(err.get("loc", ()))
        details.append({"field": field, "problem": err.get("msg", "invalid"), "type": err.get("type")})
    return envelope(422, "invalid_request", f"the request is invalid: {problems_summary(details)}", details)


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
    """Answer every error with the envelope (FastAPI's decorator form: typed for each exception class)."""
    app.exception_handler(RequestValidationError)(_validation_handler)
    app.exception_handler(PodskazkaError)(_podskazka_handler)
    app.exception_handler(StarletteHTTPException)(_http_handler)
    app.exception_handler(Busy)(_busy_handler)
    app.exception_handler(Exception)(_unexpected_handler)
