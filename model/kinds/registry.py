"""The contract every model kind meets, so that bundles, the Predictor, training and serving treat
TF-IDF, embedding and transformer models alike. Kinds are registered by import path and loaded lazily
(a kind's heavy dependencies are imported only when that kind is used)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, cast, runtime_checkable

from model.arrays import FloatArray
from model.conversation.record import Interaction
from model.errors import BundleError, ConfigError
from model.kinds.compiled import Reader

if TYPE_CHECKING:
    from model.kinds.incremental import IncrementalScorer

TaskProbs = dict[str, tuple[list[str], FloatArray]]
"""``{task: (classes, probabilities [n, k])}``, the columns in the order of ``classes``."""
DomainProbs = tuple[list[str], FloatArray] | None
"""``(domains, probabilities [n, d])`` of the domain head, or ``None`` for a model without one."""


# the pip extra that brings a kind's dependencies (pyproject.toml [project.optional-dependencies])
KIND_EXTRAS = {"hybrid": "embeddings", "transformer": "transformer"}

MODEL_KINDS = {
    "tfidf": "model.kinds.tfidf:TfidfMultiTask",
    "hybrid": "model.kinds.hybrid:HybridMultiTask",
    "transformer": "model.kinds.transformer.kind:TransformerMultiTask",
}


@runtime_checkable
class MultiTaskModel(Protocol):
    """What every model kind implements (the classes of :data:`MODEL_KINDS`)."""

    kind: str
    config_class: type[Any]  # the kind's hyper-parameter dataclass, built from the config's ``model.params``

    def __init__(self, config: object = None) -> None:
        """A new, untrained model with ``config`` (an instance of ``config_class``; ``None``: defaults)."""

    @property
    def tasks(self) -> list[str]:
        """The tasks the model predicts."""
        ...

    @property
    def task_classes(self) -> dict[str, list[str]]:
        """Each task's labels, in the order of its probability columns."""
        ...

    def fit(self, interactions: list[Interaction], tasks: list[str], domains: dict[str, str] | None = None) -> Self:
        """Train on labelled interactions; ``domains`` maps a task to its domain (for the domain head)."""
        ...

    def predict_proba(
        self, interactions: list[Interaction], tasks: list[str] | None = None
    ) -> tuple[TaskProbs, DomainProbs]:
        """Each task's probabilities for a batch, and the domain head's (``None`` without one)."""
        ...

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the trained state into the new folder ``folder``; return what the manifest records."""
        ...

    @classmethod
    def load(cls, read: Reader | Path, info: dict[str, Any]) -> Self:
        """Rebuild a trained model from files (``read`` admits only a bundle's verified files) and ``info``."""
        ...


@runtime_checkable
class IncrementalModel(Protocol):
    """A kind that can also score a live conversation by running sums (:mod:`model.kinds.incremental`):
    the TF-IDF kind, and the hybrid kind, whose scorer is ``None`` (its embeddings are not running sums)."""

    def incremental_scorer(self) -> IncrementalScorer | None:
        """A scorer over the model's n-gram views, or ``None`` when its features cannot be kept as sums."""
        ...

    def probabilities(
        self, scores: FloatArray, tasks: list[str] | None = None, *, calibrated: bool = True
    ) -> tuple[TaskProbs, DomainProbs]:
        """Each task's (and the domain head's) probabilities from the raw stacked scores the scorer gives."""
        ...


def model_class(kind: str) -> type[MultiTaskModel]:
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
    # the kinds listed in MODEL_KINDS implement the protocol (tests/model/kinds/test_contract.py checks each)
    return cast(type[MultiTaskModel], getattr(module, class_name))
