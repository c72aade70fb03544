"""The app factory: ``create_app(settings)``. The model is loaded in the lifespan into app state."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from model import __version__
from model.predictor import Predictor
from serve.errors import envelope, install_error_handlers
from serve.routes import meta, suggest
from serve.routes import page
from serve.routes import feedback, live
from serve.live import LiveHub
from serve.settings import Settings, get_settings
from serve.store import StoreHolder

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, predictor: Predictor | None = None) -> FastAPI:
    """Build the app. ``predictor`` lets a caller hand in an already loaded model (tests, embedding);
    otherwise the bundle at ``settings.model_dir`` is loaded at start-up and a bundle that fails its
    checks stops the start with the reason."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.predictor = predictor
        if app.state.predictor is None:
            log.info("loading model bundle %s", settings.model_dir)
            app.state.predictor = Predictor.load(settings.model_dir)
            log.info("serving model %s", app.state.predictor.model_version)
        app.state.store = StoreHolder(settings)  # feedback and recent interactions, opened on first use
        app.state.live = LiveHub(settings)  # live sessions and the model's thread pool
        async with app.state.live.running():
            yield
        app.state.store.close()
        app.state.predictor = None

    app = FastAPI(
        title="Podskazka",
        version=__version__,
        description="Live suggestions for Russian contact-centre conversations.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.predictor = None
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return envelope(413, "payload_too_large",
                            f"the body is {length} bytes, the limit is {settings.max_body_bytes}; send less text")
        return await call_next(request)

    app.include_router(suggest.router)
    app.include_router(meta.router)
    app.include_router(page.router)
    app.include_router(live.router)
    app.include_router(feedback.router)
    # -- more routers above this line --
    return app
