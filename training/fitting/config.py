"""The training configuration: a typed, validated dataclass read from a YAML file.

Overrides use dotted keys (``model.params.C=3``), as in spaCy's CLI. The resolved configuration is
saved into the bundle it produced.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from model.errors import ConfigError
from model.kinds.registry import MODEL_KINDS, model_class
from training.data.augment import AugmentConfig


@dataclass
class SplitConfig:
    """The held-out split of ``podskazka train`` (section ``split:``): the column whose rows stay on one
    side (``client_id``, then row by row, when no row has it), the share of groups held out (0: no held-out
    evaluation, fit on everything) and the seed of the shuffle. Raises ConfigError for a share outside
    [0, 0.9)."""

    group_by: str = "scenario"
    test_size: float = 0.2
    seed: int = 13

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_size < 0.9:
            raise ConfigError(f"split.test_size must be in [0, 0.9), got {self.test_size}")


@dataclass
class ModelConfig:
    """Which model kind to fit (section ``model:``, a name of ``model.kinds.registry.MODEL_KINDS``) and the
    parameters of its config class. Both are checked when the config is read: an unknown kind, an unknown
    parameter name or a value of the wrong type raises ConfigError naming the valid choices."""

    kind: str = "tfidf"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind must be one of {sorted(MODEL_KINDS)}, got {self.kind!r}")
        # validates the parameters now, not after an hour of loading data
        cls = model_class(self.kind)
        _check_params(self.kind, cls.config_class, self.params)
        try:
            cls.config_class(**self.params)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.params for kind {self.kind!r}: {exc}") from exc


@dataclass
class DecisionConfig:
    """How the decision thresholds are fitted on held-out rows (section ``decision:``): the precision a
    label or group must reach before it is filled in, and the lead the top label needs over the second
    (near ties abstain). Raises ConfigError for values outside (0, 1] and [0, 1)."""

    target_precision: float = 0.9
    margin: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.target_precision <= 1.0:
            raise ConfigError(f"decision.target_precision must be in (0, 1], got {self.target_precision}")
        if not 0.0 <= self.margin < 1.0:
            raise ConfigError(f"decision.margin must be in [0, 1), got {self.margin}")


@dataclass
class TrainConfig:
    """Everything ``podskazka train`` needs besides the data; saved into the bundle's manifest.

    ``taxonomy`` is the taxonomy file, ``tasks`` the tasks to fit (None: all of the taxonomy's) and
    ``column_map`` maps our column names to the data's (``text: body``). ``split``, ``model``, ``decision``
    and ``augment`` are the sections above and in ``training/data/augment.py``. ``refit_full``: after the
    held-out evaluation, refit the final model on every row (else the bundle is the model fitted on the
    training side of the split)."""

    taxonomy: str = "datasets/taxonomy.yaml"
    tasks: list[str] | None = None
    column_map: dict[str, str] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    refit_full: bool = True

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """Build a config from a parsed YAML mapping (sections as plain dicts); raises ConfigError for an
        unknown key, an unknown field of a section or a value a section refuses."""
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
    def load(cls, path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
        """Read a config file and apply ``--set`` overrides. Relative paths in the file (``taxonomy``)
        are resolved from the file's folder, so a config works from any current folder; relative
        paths given with ``--set`` are resolved from the current folder, like every command-line path."""
        raw: dict[str, Any] = {}
        if path is not None:
            try:
                raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise ConfigError(f"cannot read the config {path}: {exc}") from exc
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}: the config must be a YAML mapping")
            raw = _resolve_paths(raw, Path(path).resolve().parent)
        for item in overrides or []:
            apply_override(raw, item)
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data, as written into the bundle's manifest."""
        return asdict(self)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``--set key.sub=value`` override to a raw config mapping in place, creating sections as
    needed; the value is parsed as YAML (``3`` is a number, ``[a, b]`` a list). Raises ConfigError when the
    item has no ``=`` or a key on the path is not a section."""
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


_PATH_KEYS = ("taxonomy",)


def _resolve_paths(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative paths of a config file, resolved from the file's folder. A path that only exists from
    the current folder (configs written before this rule, e.g. ``datasets/taxonomy.yaml`` in
    training/configs/) is kept as it is."""
    raw = dict(raw)
    for key in _PATH_KEYS:
        value = raw.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            beside = Path(os.path.normpath(base / value))
            if beside.exists() or not Path(value).exists():
                raw[key] = str(beside)
    return raw


def _check_params(kind: str, config_class: type, params: Any) -> None:
    """Names and types of ``model.params``: an unknown name lists the valid ones; a value of the wrong
    type says which type is expected (before the model's own range checks see it)."""
    import dataclasses
    import difflib
    import typing

    if not isinstance(params, dict):
        raise ConfigError(f"model.params must be a mapping name -> value, got {params!r}")
    if not dataclasses.is_dataclass(config_class):
        return
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    unknown = sorted(set(params) - set(fields))
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"model.params for kind {kind!r}: unknown parameter {', '.join(hints)}; "
            f"valid parameters are {sorted(fields)}"
        )
    try:
        hints_of = typing.get_type_hints(config_class)
    except Exception:  # an annotation that cannot be resolved: leave it to the class
        return
    for name, value in params.items():
        expected = hints_of.get(name)
        if expected is not None and not _type_ok(value, expected):
            raise ConfigError(
                f"model.params.{name} for kind {kind!r} must be {_type_name(expected)}, "
                f"got {value!r} ({type(value).__name__})"
            )


def _type_ok(value: Any, expected: Any) -> bool:
    import types
    import typing

    origin = typing.get_origin(expected)
    if expected is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(expected)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        return (
            all(
                _type_ok(v, args[0] if len(args) == 1 or origin is list else args[min(i, len(args) - 1)])
                for i, v in enumerate(value)
            )
            if args
            else True
        )
    if origin is dict or expected is dict:
        return isinstance(value, dict)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(expected, type):
        return isinstance(value, expected)
    return True


def _type_name(expected: Any) -> str:
    import types
    import typing

    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(expected))
    if expected is type(None):
        return "null"
    if origin in (tuple, list):
        args = [a for a in typing.get_args(expected) if a is not Ellipsis]
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(args[0], _type_name(args[0]))}" if args else "a list"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(expected))
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string", dict: "a mapping"}.get(
        expected, getattr(expected, "__name__", str(expected))
    )
