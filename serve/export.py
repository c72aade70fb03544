"""Accepted and corrected labels as training records (the format of datasets/README.md), so a
retrain can use what operators chose: ``podskazka train --data export.jsonl``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from model.conversation.record import DEFAULT_CHANNEL
from model.text.pii import mask_pii
from serve.feedback_store import MACROS_TASK, Store

FeedbackRow = tuple[Any, ...]
"""One row of :meth:`serve.feedback_store.Store.feedback_for` (database values: text, flags, timestamps)."""


def export_training_records(
    store: Store, *, model_version: str | None = None, page: int = 500
) -> Iterator[dict[str, Any]]:
    """Accepted and corrected labels as training records (the format of datasets/README.md).

    One record per interaction with masked turns: for each task the latest accepted or corrected
    label, and ``macros`` = the macros the operator accepted. Interactions whose turns are unknown
    or that have no accepted or corrected label are left out. Turns are masked again on the way out
    (:func:`model.text.pii.mask_pii`, which leaves its own placeholders as they are), so rows stored before
    the full masking leave no personal data in an export either; ``client_id`` is the stored pseudonym."""
    after = ""
    while True:
        ids = store.interaction_ids_after(after, page)
        if not ids:
            return
        rows = store.feedback_for(ids, model_version=model_version)
        current: list[FeedbackRow] = []
        for row in rows:
            if current and row[0] != current[0][0]:
                record = _record_from_feedback(current)
                if record:
                    yield record
                current = []
            current.append(row)
        if current:
            record = _record_from_feedback(current)
            if record:
                yield record
        after = ids[-1]


def _record_from_feedback(rows: list[FeedbackRow]) -> dict[str, Any] | None:
    interaction_id = rows[0][0]
    labels: dict[str, str] = {}
    macros: dict[str, bool] = {}
    turns = channel = client = created = None
    for _, task, suggested, chosen, accepted, fb_turns, fb_channel, fb_client, fb_created, i_turns, i_channel in rows:
        created = created or fb_created
        turns = fb_turns or turns or i_turns
        channel = fb_channel or channel or i_channel
        client = fb_client or client
        if task == MACROS_TASK:
            if accepted and (chosen or suggested):
                macros[chosen or suggested] = True
            elif chosen and chosen != suggested:
                macros[chosen] = True
            elif suggested:
                macros.pop(suggested, None)
        elif accepted and (chosen or suggested):
            labels[task] = chosen or suggested
        elif not accepted and chosen:
            labels[task] = chosen
    if not turns or not labels:  # a training row needs a label of some task
        return None
    stored = json.loads(turns)
    masked = [{**t, "text": mask_pii(t.get("text") or "")} for t in stored if isinstance(t, dict)]
    record: dict[str, Any] = {"id": interaction_id, "channel": channel or DEFAULT_CHANNEL, "turns": masked}
    if client:
        record["client_id"] = client
    record["created_at"] = created
    record.update(labels)
    if any(r[1] == MACROS_TASK for r in rows):
        record["macros"] = sorted(macros)
    return record
