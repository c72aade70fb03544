"""The duplicate check's storage and request glue; its rules are in :mod:`model.assist.duplicates`.

Each checked request remembers its interaction (client, channel, problem, masked turns) in the store
and looks there for an earlier open interaction of the same client, channel and problem within the
window. The problem comes from the suggestion already computed for the request: the routes ask the
model for the problem tasks too (:func:`duplicate_tasks`) and trim them from the answer afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from model.assist.duplicates import checked_channel, duplicate_block, duplicate_tasks, problem_of
from model.conversation.record import Interaction
from model.conversation.taxonomy import Taxonomy
from model.suggestion import Suggestion
from serve.feedback_store import Store, StoreError, StoreHolder, iso_time
from serve.schemas import DuplicateOut

if TYPE_CHECKING:
    from model.predictor import Predictor
    from serve.settings import Settings

log = logging.getLogger(__name__)


def check_duplicate(
    store: Store,
    taxonomy: Taxonomy,
    *,
    interaction_id: str,
    client_id: str,
    channel: str,
    problem: tuple[str | None, str | None],
    turns: Sequence[dict[str, str]] | None,
    now: float,
    window_hours: float,
) -> dict[str, Any] | None:
    """Remember this interaction and return the duplicate block, or None (interactions older than the
    window are forgotten on the way; a taxonomy without a duplicate policy remembers nothing)."""
    if taxonomy.duplicates is None:
        return None
    store.prune_interactions(before=now - window_hours * 3600.0)
    this = store.remember(
        interaction_id,
        client_id=client_id,
        channel=channel,
        problem_task=problem[0],
        problem_label=problem[1],
        turns=turns,
        now=now,
    )
    if not checked_channel(taxonomy, channel) or problem[0] is None or this.status != "open":
        return None
    earlier = store.find_open_duplicate(this, client_id=client_id, since=now - window_hours * 3600.0)
    if earlier is None:
        return None
    return duplicate_block(
        taxonomy,
        earlier_id=earlier.interaction_id,
        task=earlier.problem_task,
        label=earlier.problem_label,
        channel=earlier.channel,
        first_seen=iso_time(earlier.first_seen),
    )


def duplicate_for_request(
    predictor: Predictor,
    store_holder: StoreHolder,
    settings: Settings,
    *,
    interaction: Interaction,
    interaction_id: str | None,
    client_id: str | None,
    result: Suggestion,
    now: float,
) -> DuplicateOut | None:
    """The duplicate block for one suggestion (``result``: the predictor's, with the problem tasks of
    :func:`duplicate_tasks` among its predictions), or None when the request cannot be checked (no
    interaction id or client id, or a taxonomy without a duplicate policy). The model is not run again."""
    if not interaction_id or not client_id or not duplicate_tasks(predictor.taxonomy, predictor.tasks):
        return None
    try:
        block = check_duplicate(
            store_holder.get(),
            predictor.taxonomy,
            interaction_id=interaction_id,
            client_id=client_id,
            channel=interaction.channel,
            problem=problem_of(predictor.taxonomy, result),
            turns=[{"role": t.role, "text": t.text} for t in interaction.turns],
            now=now,
            window_hours=settings.duplicate_window_hours,
        )
    except StoreError:  # suggestions go on without the check while the store is down
        log.warning("duplicate check skipped for %s: the store is unavailable", interaction_id)
        return None
    return DuplicateOut.model_validate(block) if block is not None else None
