"""What the routes work with, typed: the :class:`Service` one app holds, and a FastAPI dependency for
each part of it.

``create_app`` makes the :class:`Service` (settings, API keys) and keeps it on the app; the lifespan
fills in the rest (the model, the feedback store, the model's thread pool, the live hub, the hot
reloader) and empties it again at shutdown. Routes never read ``app.state``: they declare what they
need (``predictor: PredictorDep``, ``store: StoreDep``…) and a part that is not there yet answers 503
``not_ready``. The dependencies take an :class:`~starlette.requests.HTTPConnection`, so they serve
HTTP routes and the WebSocket alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from model.predictor import Predictor
from serve.feedback_store import StoreHolder
from serve.live_sessions import LiveHub
from serve.pool import ModelPool
from serve.reload import Reloader
from serve.settings import Settings

if TYPE_CHECKING:  # serve.auth imports this module for its dependencies
    from serve.auth import KeyRing

T = TypeVar("T")

NOT_READY = "no model is loaded yet; retry when /readyz answers 200"


@dataclass
class Service:
    """Everything one app serves with. ``settings`` and ``keys`` are fixed when the app is made; the
    rest is set while it runs (the lifespan) and is ``None`` before start-up and after shutdown.
    ``predictor`` is replaced as a whole by a hot reload: a request keeps the object it took."""

    settings: Settings
    keys: KeyRing
    predictor: Predictor | None = None
    reloader: Reloader | None = None  # None when the app was handed its model (nothing to watch)
    store: StoreHolder | None = None  # feedback and recent interactions, opened on first use
    pool: ModelPool | None = None  # the model's bounded thread pool, shared by HTTP and live
    live: LiveHub | None = None  # live sessions


def find_service(app: object) -> Service | None:
    """The :class:`Service` ``create_app`` attached to ``app``, or ``None`` (an app made otherwise)."""
    service = getattr(getattr(app, "state", None), "service", None)
    return service if isinstance(service, Service) else None


def service_of(app: ASGIApp) -> Service:
    """The :class:`Service` ``create_app`` attached to ``app`` (tests and the lifespan use this)."""
    service = find_service(app)
    if service is None:
        raise RuntimeError("this app was not made by serve.main.create_app: it holds no Service")
    return service


def get_service(conn: HTTPConnection) -> Service:
    """The app's :class:`Service` (for what every route may read: settings, keys)."""
    return service_of(conn.app)


def _ready(part: T | None) -> T:
    """``part`` of the service, or 503 ``not_ready`` while it is not there (before start-up, after shutdown)."""
    if part is None:
        raise HTTPException(status_code=503, detail=NOT_READY)
    return part


def get_predictor(conn: HTTPConnection) -> Predictor:
    """The model being served now; 503 until one is loaded."""
    return _ready(service_of(conn.app).predictor)


def get_app_settings(conn: HTTPConnection) -> Settings:
    """The settings the app was made with."""
    return service_of(conn.app).settings


def get_store(conn: HTTPConnection) -> StoreHolder:
    """The feedback store (opened on first use); 503 before start-up."""
    return _ready(service_of(conn.app).store)


def get_pool(conn: HTTPConnection) -> ModelPool:
    """The model's bounded thread pool; 503 before start-up."""
    return _ready(service_of(conn.app).pool)


def get_live(conn: HTTPConnection) -> LiveHub:
    """The live sessions' hub; 503 before start-up."""
    return _ready(service_of(conn.app).live)


def get_reloader(conn: HTTPConnection) -> Reloader | None:
    """The hot reloader, or ``None`` when the app was handed its model."""
    return service_of(conn.app).reloader


def get_loaded_predictor(conn: HTTPConnection) -> Predictor | None:
    """The model being served, or ``None`` (for ``/readyz``, which answers either way)."""
    return service_of(conn.app).predictor


ServiceDep = Annotated[Service, Depends(get_service)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[StoreHolder, Depends(get_store)]
PoolDep = Annotated[ModelPool, Depends(get_pool)]
LiveDep = Annotated[LiveHub, Depends(get_live)]
ReloaderDep = Annotated[Reloader | None, Depends(get_reloader)]
LoadedPredictorDep = Annotated[Predictor | None, Depends(get_loaded_predictor)]
