"""Request and response models of the public API (the /v1/suggest contract is fixed)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from model.conversation.record import DEFAULT_CHANNEL, MAX_CHARS, MAX_TURNS, Channel, Role
from model.errors import Detail
from serve.limits import named_only

MAX_BATCH = 256  # conversations in one POST /v1/suggest/batch (README «API»); a larger batch is a 422

# text for the model: code points Unicode does not name become U+FFFD (they crash text libraries)
ModelText = Annotated[str, AfterValidator(named_only)]


class TurnIn(BaseModel):
    """One turn of a conversation: who spoke (client or operator) and what was said."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    text: ModelText = Field(max_length=MAX_CHARS)


class SuggestRequest(BaseModel):
    """One conversation to suggest for: its turns (or a plain client text), channel and options."""

    model_config = ConfigDict(extra="ignore")
    interaction_id: str | None = Field(None, max_length=200)
    channel: Channel = DEFAULT_CHANNEL
    turns: list[TurnIn] | None = Field(None, max_length=MAX_TURNS)
    text: ModelText | None = Field(None, max_length=MAX_CHARS)
    tasks: list[str] | None = None
    top_k: int | None = Field(None, ge=1, le=100)
    client_id: str | None = Field(None, max_length=200)
    domain: str | None = Field(
        None,
        max_length=100,
        description="the domain the conversation belongs to (e.g. "
        "'telecom', 'marketplace'); tasks of another domain get no decision. Default: routed "
        "by the model from the content",
    )

    @model_validator(mode="after")
    def _has_text(self) -> SuggestRequest:
        if self.turns is None and self.text is None:
            raise ValueError("give 'turns' (a list of {role, text}) or a plain 'text'")
        if self.turns is not None and not self.turns:
            raise ValueError("'turns' is empty; send at least one turn")
        return self


class BatchRequest(BaseModel):
    """Several conversations in one call (``POST /v1/suggest/batch``)."""

    model_config = ConfigDict(extra="forbid")
    interactions: list[SuggestRequest] = Field(min_length=1, max_length=MAX_BATCH)


class LabelScore(BaseModel):
    """A label (or domain) with the model's confidence in it."""

    label: str
    confidence: float


class MacroOut(BaseModel):
    """A suggested reply macro, its slots filled from the conversation where it supports a value."""

    id: str
    title: str
    text: str
    confidence: float
    filled_slots: dict[str, str] = Field({}, description="slot → value found in the conversation")
    missing_slots: list[str] = Field(
        [], description="slots left as {slot} in text: nothing in the conversation supports a value"
    )


class CommentReason(BaseModel):
    """One rule of the CRM rule book that asks for a comment, and what in the conversation triggered it."""

    rule: str = Field(
        description="claim, expert_transfer, agreement, internet_mms, identified_action, "
        "legal_entity_block, refusal, asis_transfer, dropped_call"
    )
    seed_rule: int | None = Field(
        None, description="the rule's number in the CRM rule book («Комментарии в Interaction»)"
    )
    because: str


class CommentRequired(BaseModel):
    """Whether the operator must write a comment in the CRM, and the rules that ask for it."""

    required: bool
    reasons: list[CommentReason] = []


class Decision(BaseModel):
    """What to show for one task: a label, its group when only the group is sure, or nothing (abstain)."""

    label: str | None = Field(description="the decided label, its group (level 'group'), or null: abstain")
    confidence: float
    level: Literal["label", "group"] | None
    reason: Literal["no_content", "other_domain"] | None = Field(
        None,
        description="why a task gets no decision whatever the confidence: only greetings or fillers from the "
        "client (no_content), or the task belongs to another domain than the conversation (other_domain)",
    )


class DuplicateMacro(BaseModel):
    """The macro proposed for a duplicate, its slot (if it has one) filled with the earlier interaction's id."""

    id: str
    title: str
    text: str


class DuplicateOut(BaseModel):
    """An earlier open interaction of the same client, channel and problem: this one repeats it."""

    duplicate_of: str = Field(description="the earlier open interaction of the same client, channel and problem")
    task: str | None
    label: str | None
    channel: str
    first_seen: str
    resolution: str = Field(description="the proposed resolution: «Дубликат»")
    macro: DuplicateMacro | None = None


class SuggestResponse(BaseModel):
    """Suggestions for one conversation: ranked labels per task, decisions, domains, macros and hints."""

    interaction_id: str | None
    model_version: str
    predictions: dict[str, list[LabelScore]]
    decisions: dict[str, Decision] = {}
    domains: list[LabelScore] = []
    macros: list[MacroOut]
    comment_required: CommentRequired | None = None
    duplicate: DuplicateOut | None = None


class BatchResponse(BaseModel):
    """The suggestions for each conversation of a batch, in the order sent."""

    model_version: str
    results: list[SuggestResponse]


class ErrorBody(BaseModel):
    """What went wrong: a stable code, a readable message, and details (for an invalid request: each field and its problem)."""

    code: str
    message: str
    details: list[Detail] = []


class ErrorResponse(BaseModel):
    """The envelope of every error answer."""

    error: ErrorBody


# the error answers every /v1 route may give (documented in the OpenAPI schema)
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 413, 422, 503)
}


class FeedbackRequest(BaseModel):
    """What the operator did with one suggestion: a label of ``task``, or the macro ``macro_id``."""

    model_config = ConfigDict(extra="forbid")
    interaction_id: str = Field(min_length=1, max_length=200)
    model_version: str = Field(min_length=1, max_length=200)
    task: str | None = Field(None, max_length=100, description="a label task (reason2, topic, resolution)")
    macro_id: str | None = Field(None, max_length=100, description="a macro of the taxonomy, instead of task")
    suggested: str | None = Field(None, max_length=500, description="the label (or macro id) that was suggested")
    chosen: str | None = Field(
        None, max_length=500, description="what the operator chose (a correction if not accepted)"
    )
    accepted: bool = Field(strict=True)
    operator_id: str | None = Field(None, max_length=200)
    client_id: str | None = Field(None, max_length=200)
    channel: Channel | None = None
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    rank: int | None = Field(None, ge=1, le=1000, description="1-based place of the suggestion in the list")
    turns: list[TurnIn] | None = Field(None, max_length=MAX_TURNS)
    text: ModelText | None = Field(None, max_length=MAX_CHARS)
    comment: str | None = Field(None, max_length=5000)
    closed: bool | None = Field(None, description="the interaction is closed (true) or open again (false)")

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackRequest:
        if (self.task is None) == (self.macro_id is None):
            raise ValueError("give either 'task' (a label task) or 'macro_id' (a macro), not both and not neither")
        if self.task is not None and self.suggested is None and self.chosen is None:
            raise ValueError("give 'suggested' (what was shown) and/or 'chosen' (what the operator picked)")
        return self


class FeedbackResponse(BaseModel):
    """The stored feedback's id, and whether it closed (true) or reopened (false) the interaction."""

    id: int
    interaction_id: str
    closed: bool | None = None
