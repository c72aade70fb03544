"""Service settings from the environment (``PODSKAZKA_*``), read when asked, never at import."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PODSKAZKA_", protected_namespaces=())

    model_dir: Path = Field(Path("models/default"), description="the model bundle to serve")
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = Field(256, ge=1, le=10_000)
    max_body_bytes: int = Field(8_000_000, ge=1_000)
    default_top_k: int = Field(3, ge=1)
    top_macros: int = Field(3, ge=0, le=50)


@lru_cache
def get_settings() -> Settings:
    return Settings()
