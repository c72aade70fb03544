"""The duplicate check (seeds 002 «Повторным считается кейс…» and 004 «Резолюция Дубликат»).

A new interaction of the same client, in the same channel, on the same problem (the predicted
``reason2`` for telecom, ``topic`` for marketplace), while an earlier one is still open and was seen
within the window, is likely a duplicate: the earlier id is returned and «Дубликат» is proposed as
the resolution. Never in chats (004: «Не используем в: чате»).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from model.conversation.taxonomy import Taxonomy
from serve.feedback_store import Store, StoreError, iso_time

log = logging.getLogger(__name__)

PROBLEM_TASKS = ("reason2", "topic")
NO_DUPLICATES_IN = ("chat",)
DUPLICATE_RESOLUTION = "Дубликат"
DUPLICATE_MACRO = "M23"


def problem_tasks(available: Sequence[str]) -> list[str]:
    return [task for task in PROBLEM_TASKS if task in available]


def problem_of(taxonomy: Taxonomy, result: dict[str, Any]) -> tuple[str | None, str | None]:
    """(task, top label) of the conversation's problem: the problem task of the top domain."""
    predictions = result.get("predictions", {})
    candidates = [task for task in PROBLEM_TASKS if predictions.get(task)]
    if not candidates:
        return None, None
    domains = result.get("domains") or []
    if domains:
        top = domains[0]["label"]
        for task in candidates:
            if taxonomy.tasks[task].domain == top:
                return task, predictions[task][0]["label"]
    task = candidates[0]
    return task, predictions[task][0]["label"]


def check_duplicate(
    store: Store,
    taxonomy: Taxonomy,
    *,
    interaction_id: str,
    client_id: str,
    channel: str,
    problem: tuple[str | None, str | None],
    turns: Sequence[dict] | None,
    now: float,
    window_hours: float,
) -> dict[str, Any] | None:
    """Remember this interaction and return the duplicate block, or None (interactions older than the
    window are forgotten on the way)."""
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
    if channel in NO_DUPLICATES_IN or problem[0] is None or this.status != "open":
        return None
    earlier = store.find_open_duplicate(this, client_id=client_id, since=now - window_hours * 3600.0)
    if earlier is None:
        return None
    return duplicate_block(
        taxonomy,
        earlier.interaction_id,
        earlier.problem_task,
        earlier.problem_label,
        earlier.channel,
        earlier.first_seen,
    )


def duplicate_block(
    taxonomy: Taxonomy, earlier_id: str, task: str | None, label: str | None, channel: str, first_seen: float
) -> dict[str, Any]:
    macro = taxonomy.macros.get(DUPLICATE_MACRO)
    if macro is None:  # another taxonomy: the macro titled «Дубликат», if any
        macro = next((m for m in taxonomy.macros.values() if m.title == DUPLICATE_RESOLUTION), None)
    macro_out = None
    if macro is not None:
        macro_out = {"id": macro.id, "title": macro.title, "text": macro.text.replace("{номер_обращения}", earlier_id)}
    return {
        "duplicate_of": earlier_id,
        "task": task,
        "label": label,
        "channel": channel,
        "first_seen": iso_time(first_seen),
        "resolution": DUPLICATE_RESOLUTION,
        "macro": macro_out,
    }


def duplicate_for_request(
    predictor,
    store_holder,
    settings,
    *,
    interaction,
    interaction_id: str | None,
    client_id: str | None,
    result: dict[str, Any],
    now: float,
) -> dict[str, Any] | None:
    """The duplicate block for one suggestion (``result`` as the predictor returns it), or None when
    the request cannot be checked (no interaction id or client id)."""
    if not interaction_id or not client_id:
        return None
    needed = problem_tasks(predictor.tasks)
    if not needed:
        return None
    if any(task not in result.get("predictions", {}) for task in needed):
        result = predictor.predict([interaction], tasks=needed, top_k=1, top_macros=0)[0]
    try:
        return check_duplicate(
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
