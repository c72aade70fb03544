"""Service settings from the environment (``PODSKAZKA_*``), read when asked, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every setting of the service; each is read from ``PODSKAZKA_<NAME>`` unless given."""

    model_config = SettingsConfigDict(env_prefix="PODSKAZKA_", protected_namespaces=())

    model_dir: Path = Field(Path("models/default"), description="the model bundle to serve")
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = Field(8_000_000, ge=1_000)
    default_top_k: int = Field(3, ge=1)
    top_macros: int = Field(3, ge=0, le=50)

    # -- live suggestions (WebSocket /v1/live) --
    live_debounce_ms: int = Field(300, ge=0, le=10_000, description="at most one answer per interval on partials")
    live_switch_margin: float = Field(0.15, ge=0.0, le=1.0, description="hysteresis: confidence lead to switch at once")
    live_switch_updates: int = Field(3, ge=1, le=100, description="hysteresis: updates in a row a new leader needs")
    live_resume_seconds: float = Field(300.0, gt=0, description="how long a dropped session can be resumed")
    live_idle_seconds: float = Field(120.0, gt=0, description="a silent connection is closed after this")
    live_max_sessions: int = Field(1000, ge=1, description="sessions held in memory (least recently used evicted)")
    live_max_turns: int = Field(200, ge=1, le=200, description="turns held per session (the oldest dropped)")
    live_max_bytes: int = Field(
        256_000_000,
        ge=100_000,
        description="turn text held across all sessions "
        "(bytes in memory; least recently used sessions evicted past it)",
    )

    # -- the model's thread pool (HTTP and live) --
    model_workers: int = Field(4, ge=1, le=64, description="threads that run the model")
    model_queue: int = Field(16, ge=0, le=10_000, description="calls waiting for a thread; more: 503 + Retry-After")
    retry_after_seconds: int = Field(1, ge=1, le=3600, description="the Retry-After of a 503 when busy")

    # -- access (README «Access: keys, roles, origins») --
    api_keys_file: Path | None = Field(None, description="JSON file of hashed API keys (podskazka keys add)")
    api_keys: list[dict[str, Any]] = Field([], description="more hashed keys as JSON: [{id, sha256, roles}]")
    insecure_local: bool = Field(False, description="no keys at all; only with a loopback host")
    dev_keys_file: Path = Field(
        Path("var/dev-keys.json"), description="the dev key 'podskazka serve' makes on loopback"
    )
    allowed_origins: list[str] = Field([], description="browser origins allowed on /v1/live besides the server's own")
    docs: bool = Field(True, description="serve /docs and /openapi.json (Swagger UI assets served locally)")

    # -- operating it (README «Operating it»): model reload, metrics, logs --
    reload_seconds: float = Field(
        5.0,
        ge=0,
        le=3600,
        description="how often each server process checks the "
        "registry pointer / bundle for a new model (0: only POST /v1/models/reload)",
    )
    metrics_public: bool = Field(False, description="serve /metrics without a key (else role analyst)")
    log_format: str = Field(
        "auto", pattern="^(auto|json|text)$", description="json, text, or auto (text on a terminal, else JSON)"
    )
    log_requests: bool = Field(True, description="one log line per HTTP request (route, status, duration, id)")

    # -- feedback and duplicates store --
    feedback_db: Path = Field(Path("var/podskazka.sqlite3"), description="SQLite file (WAL) for feedback")
    database_url: str | None = Field(None, description="postgresql://… : store feedback in PostgreSQL instead")
    database_pool_size: int = Field(4, ge=1, le=64)
    duplicate_window_hours: float = Field(168.0, gt=0, description="how far back an open interaction counts")
    pii_secret: SecretStr | None = Field(
        None, description="HMAC key of stored client/operator ids (unset: var/pii-secret)"
    )


@lru_cache
def get_settings() -> Settings:
    """The settings from the environment, read once per process."""
    return Settings()
