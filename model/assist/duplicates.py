"""The duplicate check's rules (seeds 002 «Повторным считается кейс…» and 004 «Резолюция Дубликат»).

A new interaction of the same client, in the same channel, on the same problem (the predicted label of
the problem task of the conversation's top domain: ``domains`` in the taxonomy), while an earlier one is
still open and was seen within the window, is likely a duplicate: the earlier id is returned and the
taxonomy's duplicate policy (``duplicates``: the label, the macro) is proposed. Never in the policy's
``skip_channels`` (004: «Не используем в: чате»).

Pure functions of the taxonomy and the suggestion already computed for the request: the store and
the HTTP glue are in ``serve/duplicates.py``. A taxonomy without a duplicate policy has no check.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from model.conversation.taxonomy import Taxonomy
from model.suggestion import Suggestion


def duplicate_tasks(taxonomy: Taxonomy, available: Iterable[str]) -> list[str]:
    """The problem tasks the check reads, among ``available`` (none when the taxonomy has no duplicate policy)."""
    if taxonomy.duplicates is None:
        return []
    available = set(available)
    return [task for task in taxonomy.problem_tasks if task in available]


def problem_of(taxonomy: Taxonomy, suggestion: Suggestion) -> tuple[str | None, str | None]:
    """(task, top label) of the conversation's problem: the problem task of the top domain, else the first
    problem task the suggestion ranks; ``(None, None)`` when it ranks none."""
    candidates = [task for task in taxonomy.problem_tasks if suggestion.predictions.get(task)]
    if not candidates:
        return None, None
    top = suggestion.top_domain
    task = taxonomy.problems.get(top) if top is not None else None
    if task not in candidates:
        task = candidates[0]
    return task, suggestion.predictions[task][0].label


def checked_channel(taxonomy: Taxonomy, channel: str) -> bool:
    """Whether interactions of ``channel`` are checked at all (a duplicate policy, and not a skipped channel)."""
    policy = taxonomy.duplicates
    return policy is not None and channel not in policy.skip_channels


def duplicate_block(
    taxonomy: Taxonomy, *, earlier_id: str, task: str | None, label: str | None, channel: str, first_seen: str
) -> dict[str, Any]:
    """The ``duplicate`` block of a suggestion: the earlier interaction (``task``/``label``: its problem,
    ``first_seen``: an ISO time) and what the policy proposes, the macro's slot filled with its id."""
    policy = taxonomy.duplicates
    if policy is None:
        raise ValueError("duplicate_block needs a taxonomy with a 'duplicates' policy")
    macro_out = None
    macro = taxonomy.macros.get(policy.macro) if policy.macro is not None else None
    if macro is not None:
        text = macro.text.replace("{" + policy.slot + "}", earlier_id) if policy.slot else macro.text
        macro_out = {"id": macro.id, "title": macro.title, "text": text}
    return {
        "duplicate_of": earlier_id,
        "task": task,
        "label": label,
        "channel": channel,
        "first_seen": first_seen,
        "resolution": policy.label,
        "macro": macro_out,
    }
