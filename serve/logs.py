"""Logs: one JSON object per line (or plain text on a terminal), a request id on every line.

:class:`RequestContext` (a raw ASGI middleware) takes the caller's ``X-Request-ID`` when it is short
and made of safe characters (else makes one), returns it in the response's ``X-Request-ID`` header,
keeps it (with the route template and the served model version) in context variables that every log
line of the request reads, records the request's metrics (serve/metrics.py) and writes one line per
request: method, route template, status, duration. Never logged: bodies, conversation texts, client
or interaction ids from bodies, API keys, query strings.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve import metrics
from serve.deps import find_service

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("podskazka_request_id", default=None)
route_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("podskazka_route", default=None)
model_version_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("podskazka_model_version", default=None)

REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("podskazka.access")
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})  # probes and scrapes: logged only when they fail

# the record attributes a formatter adds to its JSON line when a log call passes them in ``extra``
EXTRA_FIELDS = ("route", "method", "status", "duration_ms", "model_version", "event", "bundle", "error")
_STD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", "route", "status", "duration_ms",
    "model_version", ...}``: one line per record; keys without a value are left out."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        route = getattr(record, "route", None) or route_var.get()
        if route:
            entry["route"] = route
        version = getattr(record, "model_version", None) or model_version_var.get()
        if version:
            entry["model_version"] = version
        for name in EXTRA_FIELDS:
            value = getattr(record, name, None)
            if value is not None and name not in entry:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The human form: time, level, logger, message, then ``request_id=…`` and the other fields."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one text line, its fields in brackets at the end."""
        line = super().format(record)
        fields = {"request_id": getattr(record, "request_id", None) or request_id_var.get()}
        fields.update({name: getattr(record, name, None) for name in EXTRA_FIELDS})
        tail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
        return f"{line} [{tail}]" if tail else line


def resolve_format(log_format: str) -> str:
    """``json``, ``text``, or ``auto``: text when stderr is a terminal, else JSON (containers, systemd)."""
    if log_format not in ("json", "text", "auto"):
        raise ValueError(f"log format {log_format!r}; use json, text or auto")
    if log_format == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return log_format


def logging_config(log_format: str = "auto", level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn's own loggers (uvicorn applies it in
    every worker process)."""
    fmt = resolve_format(log_format)
    formatter = {"()": f"serve.logs.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


LIBRARY_LOGGERS = ("spacy",)  # libraries that add their own stderr handler when imported


def adopt_library_logs() -> None:
    """Where the service set up logging (``podskazka serve``): library loggers that print through a
    handler of their own (spaCy adds one on import) and Python warnings go through ours, so every
    line keeps one format. Called before the model is loaded."""
    if not any(isinstance(h.formatter, (JsonFormatter, TextFormatter)) for h in logging.getLogger().handlers):
        return
    try:
        import spacy.util  # noqa: F401  (its handler is added on import; the model loads it anyway)
    except ImportError:
        pass
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            library.removeHandler(handler)
        library.propagate = True
    logging.captureWarnings(True)


def _request_id(scope: Scope) -> str:
    headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SAFE_ID.match(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class RequestContext:
    """Request id, metrics and one log line per HTTP request (see the module doc)."""

    def __init__(self, app: ASGIApp, *, log_requests: bool = True) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry: context variables set for the request, its metrics and log line once answered."""
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        request_id = _request_id(scope)
        service = find_service(scope.get("app"))
        predictor = service.predictor if service is not None else None
        tokens = (
            request_id_var.set(request_id),
            route_var.set(None),
            model_version_var.set(predictor.model_version if predictor is not None else None),
        )
        if kind == "websocket":
            try:
                return await self.app(scope, receive, send)
            finally:
                _reset(tokens)
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers") or []) + [header]
            await send(message)

        metrics.IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            metrics.IN_FLIGHT.dec()
            duration = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            metrics.observe_request(route, method, status, duration)
            if (
                self.log_requests
                and (route not in QUIET_ROUTES or status >= 400)
                and access_log.isEnabledFor(logging.INFO)
            ):
                route_var.set(route)
                access_log.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={"method": method, "status": status, "duration_ms": round(duration * 1000, 2)},
                )
            _reset(tokens)


def _reset(tokens: tuple[contextvars.Token[str | None], ...]) -> None:
    for var, token in zip((request_id_var, route_var, model_version_var), tokens):
        try:
            var.reset(token)
        except ValueError:  # set in another context (should not happen); leave it
            pass
