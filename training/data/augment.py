"""Training-time views of a conversation that the service will also see.

Live suggestions start on the first words of a call, and many channels carry only the client's
message. Training only on whole dialogues teaches the model the operator's side; these views teach it
to recognise the reason from the client's words and from the start of a conversation:

- ``client_only``: the client's turns alone (as a short written message would be);
- ``prefix``: the first half of the turns (as at the middle of a live call);
- ``first_turn``: the client's first turn with words in it, alone (what routing and a live call see
  first: teaches the domain head and the problem heads a conversation's opening line).

Only labels that the view still supports are kept: tasks listed in ``keep_tasks`` (the contact
reason and topic); the resolution depends on what the operator did, so it is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from model.conversation.record import Interaction
from model.errors import ConfigError
from model.kinds.tfidf import DOMAIN_ONLY


@dataclass
class AugmentConfig:
    client_only: bool = False
    prefix: bool = False
    first_turn: bool = False
    first_turn_tasks: bool = False  # the first-turn rows also train the task heads (else the domain head only)
    keep_tasks: list[str] = field(default_factory=lambda: ["reason2", "topic"])

    def __post_init__(self) -> None:
        if not isinstance(self.keep_tasks, list):
            raise ConfigError(f"augment.keep_tasks must be a list of task names, got {self.keep_tasks!r}")


def augment(interactions: list[Interaction], config: AugmentConfig) -> list[Interaction]:
    """The original rows followed by the extra views (never changes the originals)."""
    extra: list[Interaction] = []
    for x in interactions:
        labels = {t: v for t, v in x.labels.items() if t in config.keep_tasks}
        if not labels:
            continue
        client = tuple(t for t in x.turns if t.role == "client" and t.text.strip())
        if config.client_only and client and len(client) < len(x.turns):
            extra.append(replace(x, turns=client, labels=labels, macros=None, id=f"{x.id}#client"))
        if config.first_turn and client and len(x.turns) > 1:
            suffix = "#first" if config.first_turn_tasks else DOMAIN_ONLY
            extra.append(replace(x, turns=client[:1], labels=labels, macros=None, id=f"{x.id}{suffix}"))
        if config.prefix and len(x.turns) >= 4:
            head = x.turns[: len(x.turns) // 2]
            if any(t.role == "client" and t.text.strip() for t in head):
                extra.append(replace(x, turns=head, labels=labels, macros=None, id=f"{x.id}#prefix"))
    return list(interactions) + extra
