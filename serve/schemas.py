"""Request and response models of the public API (the /v1/suggest contract is fixed)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.record import MAX_CHARS, MAX_TURNS


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["client", "operator", "bot"]
    text: str = Field(max_length=MAX_CHARS)


class SuggestRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    interaction_id: str | None = Field(None, max_length=200)
    channel: Literal["call", "chat", "email"] = "chat"
    turns: list[TurnIn] | None = Field(None, max_length=MAX_TURNS)
    text: str | None = Field(None, max_length=MAX_CHARS)
    tasks: list[str] | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    client_id: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _has_text(self) -> "SuggestRequest":
        if self.turns is None and self.text is None:
            raise ValueError("give 'turns' (a list of {role, text}) or a plain 'text'")
        if self.turns is not None and not self.turns:
            raise ValueError("'turns' is empty; send at least one turn")
        return self


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    interactions: list[SuggestRequest] = Field(min_length=1, max_length=256)


class LabelScore(BaseModel):
    label: str
    confidence: float


class MacroOut(BaseModel):
    id: str
    title: str
    text: str
    confidence: float
    missing_slots: list[str] = []


class Decision(BaseModel):
    label: str | None = Field(description="the decided label, its group (level 'group'), or null: abstain")
    confidence: float
    level: Literal["label", "group"] | None


class SuggestResponse(BaseModel):
    interaction_id: str | None
    model_version: str
    predictions: dict[str, list[LabelScore]]
    decisions: dict[str, Decision] = {}
    domains: list[LabelScore] = []
    macros: list[MacroOut]


class BatchResponse(BaseModel):
    model_version: str
    results: list[SuggestResponse]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list = []


class ErrorResponse(BaseModel):
    error: ErrorBody
