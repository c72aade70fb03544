"""The app factory: ``create_app(settings)``. The model is loaded in the lifespan into app state."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from model import __version__
from model.errors import ConfigError
from model.predictor import Predictor
from serve import metrics
from serve.auth import is_loopback, load_keys
from serve.errors import install_error_handlers
from serve.feedback_store import StoreHolder
from serve.limits import BodyLimit
from serve.live_sessions import LiveHub
from serve.logs import RequestContext, adopt_library_logs
from serve.pool import ModelPool
from serve.reload import Reloader, load_checked
from serve.routes import docs, feedback, live, meta, ops, page, suggest
from serve.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, predictor: Predictor | None = None) -> FastAPI:
    """Build the app. ``predictor`` lets a caller hand in an already loaded model (tests, embedding);
    otherwise the bundle at ``settings.model_dir`` is loaded at start-up and a bundle that fails its
    checks stops the start with the reason. API keys are read here: a bad key file stops it too."""
    settings = settings or get_settings()
    if settings.insecure_local and not is_loopback(settings.host):
        raise ConfigError(
            f"insecure_local serves without keys and only on loopback, not on {settings.host!r}; "
            "bind 127.0.0.1, or configure keys (PODSKAZKA_API_KEYS_FILE) instead"
        )
    keys = load_keys(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.predictor = predictor
        app.state.reloader = None
        adopt_library_logs()  # spaCy's own log handler, warnings: through the service's format
        if app.state.predictor is None:
            # a bundle folder, or a registry (serve its ACTIVE bundle); watched for changes (serve/reload.py)
            app.state.reloader = Reloader(app, settings.model_dir, settings.reload_seconds)
            bundle_dir = app.state.reloader.target()
            log.info("loading model bundle %s", bundle_dir)
            app.state.predictor = load_checked(bundle_dir)
            log.info("serving model %s", app.state.predictor.model_version)
            app.state.reloader.start()
        metrics.model_served(app.state.predictor)
        app.state.store = StoreHolder(settings)  # feedback and recent interactions, opened on first use
        app.state.pool = ModelPool(
            settings.model_workers, settings.model_queue, retry_after=settings.retry_after_seconds
        )  # HTTP and live share it
        app.state.live = LiveHub(settings, app.state.pool)  # live sessions; starts and stops the pool
        try:
            async with app.state.live.running():
                yield
        finally:
            if app.state.reloader is not None:
                await app.state.reloader.stop()
            metrics.process_exit()
        app.state.store.close()
        app.state.predictor = None

    app = FastAPI(
        title="Podskazka",
        version=__version__,
        description="Live suggestions for Russian contact-centre conversations.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,  # /docs is served with local assets (serve/routes/docs.py)
        openapi_url="/openapi.json" if settings.docs else None,
        default_response_class=ORJSONResponse,  # orjson: several times faster than the json module here
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.predictor = None
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContext, log_requests=settings.log_requests)  # outermost: request id, metrics, log

    app.include_router(suggest.router)
    app.include_router(meta.router)
    app.include_router(page.router)
    app.include_router(live.router)
    app.include_router(feedback.router)
    if settings.docs:
        app.include_router(docs.router)
    app.include_router(ops.router)
    # -- more routers above this line --
    return app
