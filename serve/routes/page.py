"""The operator page: ``GET /`` and its static files (plain HTML/CSS/JS in serve/static, no build)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

from serve.errors import envelope

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(?:js|css|json)$")
# The page loads nothing from elsewhere and talks only to this service (fetch and WebSocket).
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The page an operator (or someone evaluating the service) opens in a browser."""
    return FileResponse(STATIC_DIR / "index.html", media_type=_MEDIA_TYPES[".html"], headers=_PAGE_HEADERS)


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    """A file of the page, by plain name only (no folders, nothing outside serve/static)."""
    path = STATIC_DIR / name
    if not _NAME.fullmatch(name) or not path.is_file():
        return envelope(404, "not_found", f"no page file {name!r}")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES[path.suffix],
        headers={"x-content-type-options": "nosniff", "cache-control": "no-cache"},
    )
