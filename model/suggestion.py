"""What :class:`model.predictor.Predictor` returns for one conversation: a :class:`Suggestion`.

``Suggestion.to_dict()`` is the body of ``POST /v1/suggest`` without ``interaction_id``,
``model_version`` and ``duplicate`` (the server adds those): the JSON contract of the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from model.assist.decision import Decision


@dataclass(frozen=True, slots=True)
class RankedLabel:
    """A label (or domain) with its confidence, in ranked order."""

    label: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """``{"label", "confidence"}``."""
        return {"label": self.label, "confidence": self.confidence}


@dataclass(frozen=True, slots=True)
class Macro:
    """A suggested macro, its template filled with the slot values found in the conversation."""

    id: str
    title: str
    text: str
    confidence: float
    filled_slots: dict[str, str] = field(default_factory=dict)  # slot → value found in the conversation
    missing_slots: tuple[str, ...] = ()  # slots left as {slot} in ``text``

    def to_dict(self) -> dict[str, Any]:
        """The JSON of one entry of the API's ``macros``."""
        return {
            "id": self.id,
            "title": self.title,
            "text": self.text,
            "confidence": self.confidence,
            "filled_slots": dict(self.filled_slots),
            "missing_slots": list(self.missing_slots),
        }


@dataclass(frozen=True, slots=True)
class CommentReason:
    """One rule of the CRM's rule book that asks for a comment, and why it fired."""

    rule: str
    seed_rule: int | None
    because: str

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CommentReason:
        """From ``model.assist.comments.comment_required``'s ``{"rule", "seed_rule", "because"}``."""
        return cls(rule=str(raw["rule"]), seed_rule=raw.get("seed_rule"), because=str(raw["because"]))

    def to_dict(self) -> dict[str, Any]:
        """``{"rule", "seed_rule", "because"}``."""
        return {"rule": self.rule, "seed_rule": self.seed_rule, "because": self.because}


@dataclass(frozen=True, slots=True)
class CommentHint:
    """Whether the CRM's rules ask for a comment on this conversation, with the reasons."""

    required: bool
    reasons: tuple[CommentReason, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CommentHint:
        """From ``model.assist.comments.comment_required``'s ``{"required", "reasons"}``."""
        return cls(
            required=bool(raw["required"]), reasons=tuple(CommentReason.from_dict(r) for r in raw.get("reasons", ()))
        )

    def with_reasons(self, more: Iterable[CommentReason]) -> CommentHint:
        """This hint with the reasons of rules it does not hold yet added (required when any is held)."""
        seen = {r.rule for r in self.reasons}
        reasons = self.reasons + tuple(r for r in more if r.rule not in seen)
        return CommentHint(required=bool(reasons), reasons=reasons)

    def to_dict(self) -> dict[str, Any]:
        """``{"required", "reasons": [...]}``."""
        return {"required": self.required, "reasons": [r.to_dict() for r in self.reasons]}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The model's suggestion for one conversation.

    ``predictions``: per task, labels ranked by confidence; ``decisions``: per task, a label, its group
    or an abstention; ``domains``: ranked; ``macros``: ranked by confidence; ``comment_required``:
    ``None`` when not asked (batch relabelling) or when the rule book does not apply."""

    predictions: dict[str, tuple[RankedLabel, ...]]
    decisions: dict[str, Decision]
    domains: tuple[RankedLabel, ...] = ()
    macros: tuple[Macro, ...] = ()
    comment_required: CommentHint | None = None

    @property
    def top_domain(self) -> str | None:
        """The leading domain, or ``None`` without a domain head."""
        return self.domains[0].label if self.domains else None

    def only(self, tasks: Iterable[str], top_k: int | None = None) -> Suggestion:
        """The same suggestion for ``tasks`` alone (in that order), each ranking cut to ``top_k``."""
        tasks = [t for t in tasks if t in self.predictions]
        return replace(
            self,
            predictions={t: self.predictions[t][:top_k] for t in tasks},
            decisions={t: self.decisions[t] for t in tasks if t in self.decisions},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON the API returns for it (``/v1/suggest`` without ``interaction_id``,
        ``model_version`` and ``duplicate``)."""
        return {
            "predictions": {task: [x.to_dict() for x in ranked] for task, ranked in self.predictions.items()},
            "decisions": {task: d.to_dict() for task, d in self.decisions.items()},
            "domains": [x.to_dict() for x in self.domains],
            "macros": [m.to_dict() for m in self.macros],
            "comment_required": self.comment_required.to_dict() if self.comment_required is not None else None,
        }
