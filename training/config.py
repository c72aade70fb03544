"""The training configuration: a typed, validated dataclass read from a YAML file.

Overrides use dotted keys (``model.params.C=3``), as in spaCy's CLI. The resolved configuration is
saved into the bundle it produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.base import MODEL_KINDS, model_class
from model.errors import ConfigError
from training.augment import AugmentConfig


@dataclass
class SplitConfig:
    group_by: str = "scenario"
    test_size: float = 0.2
    seed: int = 13

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_size < 0.9:
            raise ConfigError(f"split.test_size must be in [0, 0.9), got {self.test_size}")


@dataclass
class ModelConfig:
    kind: str = "tfidf"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind must be one of {sorted(MODEL_KINDS)}, got {self.kind!r}")
        # validates the parameters now, not after an hour of loading data
        cls = model_class(self.kind)
        try:
            cls.config_class(**self.params)
        except TypeError as exc:
            raise ConfigError(f"model.params for kind {self.kind!r}: {exc}") from exc


@dataclass
class DecisionConfig:
    target_precision: float = 0.9
    margin: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.target_precision <= 1.0:
            raise ConfigError(f"decision.target_precision must be in (0, 1], got {self.target_precision}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"decision.margin must be in [0, 1), got {self.margin}")


@dataclass
class TrainConfig:
    taxonomy: str = "datasets/taxonomy.yaml"
    tasks: list[str] | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refit_full: bool = True

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "TrainConfig":
        known = {"taxonomy", "tasks", "column_map", "split", "model", "decision", "augment", "refit_full"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        raw = dict(raw)
        try:
            raw["split"] = SplitConfig(**(raw.get("split") or {}))
            raw["model"] = ModelConfig(**(raw.get("model") or {}))
            raw["decision"] = DecisionConfig(**(raw.get("decision") or {}))
            raw["augment"] = AugmentConfig(**(raw.get("augment") or {}))
            return cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"invalid config: {exc}") from exc

    @classmethod
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> "TrainConfig":
        raw: dict[str, Any] = {}
        if path is not None:
            try:
                raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read the config {path}: {exc}") from exc
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: the config must be a YAML mapping")
        for item in overrides or []:
            _apply_override(raw, item)
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _apply_override(raw: dict[str, Any], item: str) -> None:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. model.params.C=3)")
    key, value = item.split("=", 1)
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {item!r}: {part!r} is not a section")
    node[parts[-1]] = yaml.safe_load(value)
