"""The decision layer: when to commit to a label, fall back to its group, or abstain.

A bundle's decision policy (:class:`DecisionPolicy`, chosen on validation data at training time and
stored in the manifest's ``decision`` entry) holds per task and per label the confidence needed to
reach the target precision, the group thresholds, and a margin for near ties. A task the policy does
not name uses ``default_threshold`` (0.5) at both levels. A threshold of ``None`` means *never*: no
confidence reaches it (the stored JSON writes it as 1.01, above any probability).

    decide(...) -> Decision(label: str | None, confidence: float, level: "label" | "group" | None)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from model.conversation.taxonomy import Task
from model.errors import BundleError

DEFAULT_THRESHOLD = 0.5
NEVER_STORED = 1.01  # how a "never" threshold is written in the manifest (bundles of format 3 hold it)

Level = Literal["label", "group"]
Reason = Literal["no_content", "other_domain"]


@dataclass(frozen=True, slots=True)
class Decision:
    """One task's decision: a label, its group (``level == "group"``), or ``None`` (abstain).

    ``reason`` says why a task gets no decision whatever the confidence (``no_content``: only
    greetings or fillers; ``other_domain``: the conversation belongs to another domain)."""

    label: str | None
    confidence: float
    level: Level | None
    reason: Reason | None = None

    @property
    def decided(self) -> bool:
        """True when a label or a group was chosen."""
        return self.level is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON of the API's ``decisions[task]``."""
        return {"label": self.label, "confidence": self.confidence, "level": self.level, "reason": self.reason}


# ----------------------------------------------------------------------------- policy
def _threshold_from_json(value: Any, where: str) -> float | None:
    """A stored threshold: a number in [0, 1], or above 1 (written 1.01): never reached."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"{where} is {value!r}, not a number; retrain the model or fix the manifest")
    return None if value > 1.0 else float(value)


def _threshold_to_json(value: float | None) -> float:
    return NEVER_STORED if value is None else value


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise BundleError(f"{where} is {type(raw).__name__}, not a mapping; retrain the model or fix the manifest")
    return raw


def _reaches(confidence: float, threshold: float | None) -> bool:
    return threshold is not None and confidence >= threshold


@dataclass(frozen=True)
class TaskPolicy:
    """The thresholds of one task. ``None`` as a threshold: that level never decides."""

    threshold: float | None = DEFAULT_THRESHOLD  # label level, for labels without their own
    thresholds: dict[str, float | None] = field(default_factory=dict)  # per label
    group_threshold: float | None = DEFAULT_THRESHOLD  # group level, for groups without their own
    group_thresholds: dict[str, float | None] = field(default_factory=dict)  # per group
    margin: float = 0.0  # the top label must lead the second by this much

    def label_threshold(self, label: str) -> float | None:
        """The confidence ``label`` needs to be decided (``None``: never)."""
        return self.thresholds[label] if label in self.thresholds else self.threshold

    def group_threshold_of(self, group: str) -> float | None:
        """The summed confidence ``group`` needs to be decided (``None``: never)."""
        return self.group_thresholds[group] if group in self.group_thresholds else self.group_threshold

    @classmethod
    def from_dict(
        cls, raw: Mapping[str, Any], *, default_threshold: float, default_margin: float, where: str = "decision"
    ) -> TaskPolicy:
        """Read a stored task entry; keys it leaves out take the policy's defaults."""
        known = {"threshold", "thresholds", "group_threshold", "group_thresholds", "margin"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BundleError(f"{where} has unknown keys {unknown}; expected some of {sorted(known)}")

        def thresholds(key: str) -> dict[str, float | None]:
            return {
                str(k): _threshold_from_json(v, f"{where}.{key}[{k!r}]")
                for k, v in _mapping(raw.get(key, {}), f"{where}.{key}").items()
            }

        return cls(
            threshold=_threshold_from_json(raw["threshold"], f"{where}.threshold")
            if "threshold" in raw
            else default_threshold,
            thresholds=thresholds("thresholds"),
            group_threshold=_threshold_from_json(raw["group_threshold"], f"{where}.group_threshold")
            if "group_threshold" in raw
            else default_threshold,
            group_thresholds=thresholds("group_thresholds"),
            margin=float(raw.get("margin", default_margin)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form (a never-reached threshold is written 1.01)."""
        return {
            "threshold": _threshold_to_json(self.threshold),
            "thresholds": {k: _threshold_to_json(v) for k, v in self.thresholds.items()},
            "group_threshold": _threshold_to_json(self.group_threshold),
            "group_thresholds": {k: _threshold_to_json(v) for k, v in self.group_thresholds.items()},
            "margin": self.margin,
        }


@dataclass(frozen=True)
class PriorEntry:
    """A contact centre's label mix for one task: probabilities are reweighted by ``target / train``."""

    target: dict[str, float]
    train: dict[str, float] = field(default_factory=dict)  # labels left out: uniform
    source: str | None = None  # how ``target`` was obtained, for people

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "decision.priors") -> PriorEntry:
        """Read a stored prior entry (``{"train", "target", "source"}``)."""
        return cls(
            target={str(k): float(v) for k, v in _mapping(raw.get("target") or {}, f"{where}.target").items()},
            train={str(k): float(v) for k, v in _mapping(raw.get("train") or {}, f"{where}.train").items()},
            source=raw.get("source"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        out: dict[str, Any] = {"train": dict(self.train), "target": dict(self.target)}
        if self.source is not None:
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class DecisionPolicy:
    """A bundle's decision policy: per-task thresholds, the training label mix and a centre's priors."""

    tasks: dict[str, TaskPolicy] = field(default_factory=dict)
    target_precision: float | None = None  # what the thresholds were fitted for (None: not fitted)
    margin: float | None = None  # the margin of tasks the policy does not name (None: 0)
    default_threshold: float | None = None  # the threshold of tasks the policy does not name (None: 0.5)
    train_priors: dict[str, dict[str, float]] = field(default_factory=dict)  # task → label → training share
    priors: dict[str, PriorEntry] = field(default_factory=dict)  # task → a centre's label mix
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as written

    def for_task(self, task: str) -> TaskPolicy:
        """The thresholds of ``task``: its fitted ones, or the defaults for every label and group."""
        if task in self.tasks:
            return self.tasks[task]
        default = DEFAULT_THRESHOLD if self.default_threshold is None else self.default_threshold
        return TaskPolicy(threshold=default, group_threshold=default, margin=self.margin or 0.0)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "decision") -> DecisionPolicy:
        """Read the manifest's ``decision`` entry (``None`` or ``{}``: no fitted policy)."""
        raw = _mapping(raw or {}, where)
        default = float(raw.get("default_threshold", DEFAULT_THRESHOLD))
        margin = float(raw.get("margin", 0.0))
        known = {"tasks", "target_precision", "margin", "default_threshold", "train_priors", "priors"}
        return cls(
            tasks={
                str(task): TaskPolicy.from_dict(
                    _mapping(entry, f"{where}.tasks.{task}"),
                    default_threshold=default,
                    default_margin=margin,
                    where=f"{where}.tasks.{task}",
                )
                for task, entry in _mapping(raw.get("tasks") or {}, f"{where}.tasks").items()
            },
            target_precision=None if raw.get("target_precision") is None else float(raw["target_precision"]),
            margin=None if raw.get("margin") is None else float(raw["margin"]),
            default_threshold=None if raw.get("default_threshold") is None else float(raw["default_threshold"]),
            train_priors={
                str(task): {str(k): float(v) for k, v in _mapping(mix, f"{where}.train_priors.{task}").items()}
                for task, mix in _mapping(raw.get("train_priors") or {}, f"{where}.train_priors").items()
            },
            priors={
                str(task): PriorEntry.from_dict(_mapping(entry, f"{where}.priors.{task}"), f"{where}.priors.{task}")
                for task, entry in _mapping(raw.get("priors") or {}, f"{where}.priors").items()
            },
            extra={k: v for k, v in raw.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The stored form: the keys ``from_dict`` reads, in the order training writes them."""
        out: dict[str, Any] = {}
        if self.target_precision is not None:
            out["target_precision"] = self.target_precision
        if self.margin is not None:
            out["margin"] = self.margin
        if self.default_threshold is not None:
            out["default_threshold"] = self.default_threshold
        out["tasks"] = {task: policy.to_dict() for task, policy in self.tasks.items()}
        if self.train_priors:
            out["train_priors"] = {task: dict(mix) for task, mix in self.train_priors.items()}
        if self.priors:
            out["priors"] = {task: entry.to_dict() for task, entry in self.priors.items()}
        out.update(self.extra)
        return out


# ----------------------------------------------------------------------------- decide
def decide(task: Task, classes: list[str], probs: np.ndarray, policy: DecisionPolicy) -> Decision:
    """The decision for one row's probabilities ``probs`` over ``classes``."""
    rules = policy.for_task(task.name)
    order = np.argsort(-probs, kind="stable")
    top = int(order[0])
    label, confidence = classes[top], float(probs[top])
    second = float(probs[order[1]]) if len(order) > 1 else 0.0
    if _reaches(confidence, rules.label_threshold(label)) and confidence - second >= rules.margin:
        return Decision(label=label, confidence=round(confidence, 6), level="label")
    if task.groups:
        group_scores: dict[str, float] = {}
        for cls, p in zip(classes, probs):
            group = task.group_of(cls)
            if group is not None:
                group_scores[group] = group_scores.get(group, 0.0) + float(p)
        if group_scores:
            group, score = max(group_scores.items(), key=lambda kv: kv[1])
            if len(task.groups[group]) > 1 and _reaches(score, rules.group_threshold_of(group)):
                return Decision(label=group, confidence=round(score, 6), level="group")
    return Decision(label=None, confidence=round(confidence, 6), level=None)
