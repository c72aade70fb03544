"""The interaction record: what one conversation looks like to every part of the project.

A record has ``turns`` (a list of ``{"role", "text"}``) or a plain ``text`` (one client turn).
Labels (``reason2``, ``topic``, ``resolution``, ``macros``) are optional: a row may carry some
tasks' labels and not others.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from model.errors import InputError

# who speaks and over what: the one definition of the role and channel names (the API schemas, the taxonomy's
# ``needs`` and the model's role/channel tokens all take them from here)
Role = Literal["client", "operator", "bot"]
Channel = Literal["call", "chat", "email"]
ROLES: tuple[Role, ...] = get_args(Role)
CHANNELS: tuple[Channel, ...] = get_args(Channel)
DEFAULT_CHANNEL: Channel = "chat"
MAX_TURNS = 200
MAX_CHARS = 20_000


@dataclass(frozen=True)
class Turn:
    """One utterance of a conversation: who spoke (a :data:`Role`) and what was said or typed."""

    role: str
    text: str


@dataclass(frozen=True)
class Interaction:
    """One conversation (a call, chat or e-mail thread) with what training rows also carry: labels per
    task, the macros the operator used, ids and the caller's domain."""

    turns: tuple[Turn, ...]
    channel: str = DEFAULT_CHANNEL
    id: str | None = None
    client_id: str | None = None
    created_at: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    macros: tuple[str, ...] | None = None  # None: the row says nothing about macros
    domain: str | None = None  # the domain the caller says this is (e.g. "telecom"); None: routed by content

    @property
    def text(self) -> str:
        """Every turn's text, one per line, without roles."""
        return "\n".join(turn.text for turn in self.turns)


def parse_turns(value: Any, *, where: str = "interaction") -> tuple[Turn, ...]:
    """Turns from a request's or a row's ``turns`` list; :class:`InputError` names the first bad one."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"{where}: 'turns' must be a list of {{'role', 'text'}} objects, got {type(value).__name__}")
    turns = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: turns[{i}] must be an object with 'role' and 'text'")
        role, text = item.get("role"), item.get("text")
        if role not in ROLES:
            raise InputError(f"{where}: turns[{i}].role is {role!r}; use one of {list(ROLES)}")
        if not isinstance(text, str):
            raise InputError(f"{where}: turns[{i}].text must be a string")
        turns.append(Turn(role=role, text=text))
    return tuple(turns)


def interaction_from_dict(
    row: Mapping[str, Any], *, label_tasks: tuple[str, ...] = (), where: str = "interaction"
) -> Interaction:
    """Build an :class:`Interaction` from a plain mapping, checking the shape and the limits."""
    turns_raw, text = row.get("turns"), row.get("text")
    if turns_raw is not None and turns_raw != []:
        turns = parse_turns(turns_raw, where=where)
    elif isinstance(text, str):
        turns = (Turn(role="client", text=text),)
    else:
        raise InputError(f"{where}: give 'turns' (a list of {{'role', 'text'}}) or a plain 'text'")
    check_limits(turns, where=where)
    channel = row.get("channel") or DEFAULT_CHANNEL
    if channel not in CHANNELS:
        raise InputError(f"{where}: channel is {channel!r}; use one of {list(CHANNELS)}")
    labels = {}
    for task in label_tasks:
        value = row.get(task)
        if value is not None and not (isinstance(value, float) and value != value) and str(value) != "":
            labels[task] = str(value)
    macros = row.get("macros")
    if macros is None or (isinstance(macros, float) and macros != macros):
        macros = None
    elif isinstance(macros, str):
        macros = tuple(m.strip() for m in macros.replace(";", ",").split(",") if m.strip())
    return Interaction(
        turns=turns,
        channel=channel,
        id=None if row.get("id") is None else str(row.get("id")),
        client_id=None if row.get("client_id") is None else str(row.get("client_id")),
        created_at=None if row.get("created_at") is None else str(row.get("created_at")),
        labels=labels,
        macros=None if macros is None else tuple(str(m) for m in macros),
        domain=_domain(row.get("domain"), where),
    )


def _domain(value: Any, where: str) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: domain must be a string (e.g. 'telecom' or 'marketplace')")
    return value


def check_limits(turns: tuple[Turn, ...], *, where: str = "interaction") -> None:
    """Refuse (:class:`InputError`) a conversation with no turns, no words, or more turns or text than
    ``MAX_TURNS`` / ``MAX_CHARS``."""
    if not turns:
        raise InputError(f"{where}: 'turns' is empty; send at least one turn with text")
    if len(turns) > MAX_TURNS:
        raise InputError(f"{where}: {len(turns)} turns, the limit is {MAX_TURNS}; send the latest {MAX_TURNS}")
    total = sum(len(turn.text) for turn in turns)
    if total > MAX_CHARS:
        raise InputError(
            f"{where}: {total} characters of text, the limit is {MAX_CHARS}; send a shorter window of the conversation"
        )
    if not any(turn.text.strip() for turn in turns):
        raise InputError(f"{where}: every turn's text is empty; send the words of the conversation")
