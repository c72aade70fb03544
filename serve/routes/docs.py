"""``GET /docs``: Swagger UI with its assets served from here (the ``fastapi-offline`` package ships
them), so the page works on an operator LAN without internet. Off with ``PODSKAZKA_DOCS=false``."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from serve.errors import envelope

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    """The interactive API docs (Authorize with an API key to try the endpoints)."""
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} — API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
    )


@router.get("/docs/assets/{name}")
def asset(name: str) -> Response:
    """One Swagger UI file, by name (nothing else of the package is reachable)."""
    media = ASSETS.get(name)
    if media is None:
        return envelope(404, "not_found", f"no docs asset {name!r}; the docs page uses {sorted(ASSETS)}")
    body = (files("fastapi_offline") / "static" / name).read_bytes()
    return Response(body, media_type=media, headers={"cache-control": "public, max-age=86400"})
