"""The app factory: ``create_app(settings)``. The model is loaded in the lifespan into the app's
:class:`~serve.deps.Service`, which the routes take as typed dependencies (serve/deps.py)."""

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
from serve.deps import Service
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

    service = Service(settings=settings, keys=keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.predictor = predictor
        service.reloader = None
        adopt_library_logs()  # spaCy's own log handler, warnings: through the service's format
        if service.predictor is None:
            # a bundle folder, or a registry (serve its ACTIVE bundle); watched for changes (serve/reload.py)
            reloader = service.reloader = Reloader(service, settings.model_dir, settings.reload_seconds)
            bundle_dir = reloader.target()
            log.info("loading model bundle %s", bundle_dir)
            service.predictor = load_checked(bundle_dir)
            log.info("serving model %s", service.predictor.model_version)
            reloader.start()
        metrics.model_served(service.predictor)
        store = service.store = StoreHolder(settings)  # feedback and recent interactions, opened on first use
        pool = service.pool = ModelPool(
            settings.model_workers, settings.model_queue, retry_after=settings.retry_after_seconds
        )  # HTTP and live share it
        live = service.live = LiveHub(settings, pool)  # live sessions; starts and stops the pool
        try:
            async with live.running():
                yield
        finally:
            if service.reloader is not None:
                await service.reloader.stop()
            metrics.process_exit()
        store.close()
        service.predictor = None
        service.store = service.pool = service.live = None

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
    app.state.service = service  # the routes reach it through serve/deps.py, never through app.state
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
