"""The contract every model kind meets, so that bundles, the Predictor, training and serving treat
TF-IDF, embedding and transformer models alike. Kinds are registered by import path and loaded lazily
(a kind's heavy dependencies are imported only when that kind is used)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from model.conversation.record import Interaction
from model.errors import BundleError, ConfigError

TaskProbs = dict[str, tuple[list[str], np.ndarray]]
DomainProbs = tuple[list[str], np.ndarray] | None

# the pip extra that brings a kind's dependencies (pyproject.toml [project.optional-dependencies])
KIND_EXTRAS = {"hybrid": "embeddings", "transformer": "transformer"}

MODEL_KINDS = {
    "tfidf": "model.kinds.tfidf:TfidfMultiTask",
    "hybrid": "model.kinds.hybrid:HybridMultiTask",
    "transformer": "model.kinds.transformer.kind:TransformerMultiTask",
}


@runtime_checkable
class MultiTaskModel(Protocol):
    kind: str

    @property
    def tasks(self) -> list[str]: ...

    @property
    def task_classes(self) -> dict[str, list[str]]: ...

    def fit(self, interactions: list[Interaction], tasks: list[str], domains: dict[str, str] | None = None): ...

    def predict_proba(
        self, interactions: list[Interaction], tasks: list[str] | None = None
    ) -> tuple[TaskProbs, DomainProbs]: ...

    def save(self, folder: Path) -> dict: ...

    @classmethod
    def load(cls, folder: Path, info: dict) -> MultiTaskModel: ...


def model_class(kind: str):
    """The class implementing a model kind (imported on first use)."""
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model kind {kind!r}; known kinds are {sorted(MODEL_KINDS)}")
    module_name, class_name = MODEL_KINDS[kind].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BundleError(
            f"model kind {kind!r} needs a dependency that is not installed ({exc.name}); "
            + (
                f"install it with pip install -e '.[{KIND_EXTRAS[kind]}]'"
                if kind in KIND_EXTRAS
                else "reinstall the project (pip install -e .)"
            )
        ) from exc
    return getattr(module, class_name)
