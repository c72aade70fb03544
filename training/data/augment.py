"""Training-time views of a conversation that the service will also see.

Live suggestions start on the first words of a call, and many channels carry only the client's
message. Training only on whole dialogues teaches the model the operator's side; these views teach it
to recognise the reason from the client's words and from the start of a conversation:

- ``client_only``: the client's turns alone (as a short written message would be);
- ``prefix``: the first half of the turns (as at the middle of a live call);
- ``first_turn``: the client's first turn with words in it, alone (what routing and a live call see
  first: teaches the domain head and the problem heads a conversation's opening line).

Only labels that the view still supports are kept: tasks listed in ``keep_tasks``, by default the
taxonomy's problem tasks (``domains:`` in the taxonomy: the contact reason and the topic in the
project's file); the resolution depends on what the operator did, so it is not kept. A taxonomy that
names no problem task gets no extra views unless ``keep_tasks`` lists some.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from model.conversation.record import Interaction
from model.conversation.taxonomy import Taxonomy
from model.errors import ConfigError
from model.kinds.tfidf import DOMAIN_ONLY

log = logging.getLogger(__name__)


@dataclass
class AugmentConfig:
    """Which extra training views to add (section ``augment:``, views described above; all off by default),
    whether the first-turn rows also train the task heads rather than the domain head alone, and which
    tasks' labels the views keep (None: the taxonomy's problem tasks). Raises ConfigError when
    ``keep_tasks`` is not a list."""

    client_only: bool = False
    prefix: bool = False
    first_turn: bool = False
    first_turn_tasks: bool = False  # the first-turn rows also train the task heads (else the domain head only)
    keep_tasks: list[str] | None = None  # None: the taxonomy's problem tasks

    def __post_init__(self) -> None:
        if self.keep_tasks is not None and not isinstance(self.keep_tasks, list):
            raise ConfigError(
                f"augment.keep_tasks must be a list of task names (or null: the taxonomy's problem tasks), "
                f"got {self.keep_tasks!r}"
            )

    @property
    def any_view(self) -> bool:
        """Whether any extra view is asked for."""
        return self.client_only or self.prefix or self.first_turn


def kept_tasks(config: AugmentConfig, taxonomy: Taxonomy) -> list[str]:
    """The tasks whose labels the extra views keep: ``keep_tasks``, else the taxonomy's problem tasks."""
    if config.keep_tasks is None:
        keep = list(taxonomy.problem_tasks)
        if not keep and config.any_view:
            log.warning(
                "augment: the taxonomy names no problem task ('domains: {<domain>: {problem: <task>}}'), so no "
                "extra views are made; add that section or list the tasks in augment.keep_tasks"
            )
        return keep
    unknown = [t for t in config.keep_tasks if t not in taxonomy.tasks]
    if unknown:
        log.warning(
            "augment.keep_tasks names %s, not tasks of the taxonomy %s; they are ignored "
            "(leave keep_tasks out to keep the taxonomy's problem tasks)",
            unknown,
            sorted(taxonomy.tasks),
        )
    return [t for t in config.keep_tasks if t in taxonomy.tasks]


def augment(interactions: list[Interaction], config: AugmentConfig, taxonomy: Taxonomy) -> list[Interaction]:
    """The original rows followed by the extra views (never changes the originals)."""
    if not config.any_view:
        return list(interactions)
    keep = set(kept_tasks(config, taxonomy))
    extra: list[Interaction] = []
    for x in interactions:
        labels = {t: v for t, v in x.labels.items() if t in keep}
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
