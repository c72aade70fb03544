"""``POST /v1/feedback``, ``GET /v1/stats`` and ``GET /v1/feedback/export``.

Feedback is checked against the served taxonomy (a label of the task, a macro of the library),
masked, and written to the store; a label that closes the case (the taxonomy's ``closing``: a
resolution «Решено», «НТО»… in the project's file), or ``closed: true``, closes the interaction for
the duplicate check. The export turns accepted and corrected labels into
training records that ``podskazka train --data`` reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from model.conversation.taxonomy import Taxonomy
from model.errors import InputError
from serve.auth import AdminDep, AnalystDep, OperatorDep
from serve.deps import LiveDep, PredictorDep, StoreDep
from serve.export import export_training_records
from serve.feedback_store import MACROS_TASK, Feedback, StoreHolder
from serve.schemas import ERRORS as _ERRORS
from serve.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(prefix="/v1", tags=["feedback"])


def _check_against_taxonomy(body: FeedbackRequest, taxonomy: Taxonomy) -> None:
    if body.task is not None:
        task = taxonomy.tasks.get(body.task)
        if task is None:
            raise InputError(f"task is {body.task!r}; use one of {sorted(taxonomy.tasks)} (or macro_id for a macro)")
        if body.chosen is not None and body.chosen not in task.labels:
            raise InputError(
                f"chosen {body.chosen!r} is not a label of task {body.task!r}; "
                "send it byte for byte as in GET /v1/taxonomy"
            )
        if body.suggested is not None and body.suggested not in task.labels and body.suggested not in task.groups:
            raise InputError(f"suggested {body.suggested!r} is neither a label nor a group of task {body.task!r}")
        return
    for field in ("macro_id", "chosen", "suggested"):
        value = getattr(body, field)
        if value is not None and value not in taxonomy.macros:
            raise InputError(
                f"{field} {value!r} is not a macro of the served taxonomy; use one of {sorted(taxonomy.macros)}"
            )


class SameLabelError(InputError):
    """A "correction" that names the suggested label itself: it would be exported as training data."""

    code = "same_label"


def _check_correction(body: FeedbackRequest) -> None:
    suggested = body.suggested if body.task is not None else (body.suggested or body.macro_id)
    if not body.accepted and body.chosen is not None and body.chosen == suggested:
        raise SameLabelError(
            f"chosen {body.chosen!r} is the suggested label itself: a correction names another label "
            "(to agree, send accepted: true) / исправление совпадает с подсказкой: выберите другую метку "
            "или примите подсказку"
        )


def _closes(body: FeedbackRequest, taxonomy: Taxonomy) -> bool | None:
    """Whether the feedback closes (True) or reopens (False) the interaction; None leaves it as it is.
    ``closed`` says so explicitly; else a label of the taxonomy's ``closing`` task that closes the case."""
    if body.closed is not None:
        return body.closed
    closing = taxonomy.closing
    if closing is not None and body.task == closing.task:
        resolution = body.chosen or (body.suggested if body.accepted else None)
        if resolution in closing.labels:
            return True
    return None


def _stored_labels(body: FeedbackRequest, taxonomy: Taxonomy) -> tuple[str, str | None, str | None]:
    """(task, suggested, chosen) as the store keeps them: a macro under ``MACROS_TASK``; an accepted
    suggestion is also the chosen label (a group name suggested is not a label, so it is not chosen)."""
    if body.task is None:  # a macro: the schema holds exactly one of task and macro_id
        return MACROS_TASK, body.suggested or body.macro_id, body.chosen or (body.macro_id if body.accepted else None)
    suggested_label = body.suggested if body.suggested in taxonomy.tasks[body.task].labels else None
    return body.task, body.suggested, body.chosen or (suggested_label if body.accepted else None)


def _write(holder: StoreHolder, feedback: Feedback, closed: bool | None) -> int:
    store = holder.get()
    feedback_id = store.add_feedback(feedback, now=time.time())
    if closed is not None:
        store.set_status(feedback.interaction_id, "closed" if closed else "open")
    return feedback_id


@router.post("/feedback", status_code=201, response_model=FeedbackResponse, responses=_ERRORS)
async def feedback(
    body: FeedbackRequest, predictor: PredictorDep, store: StoreDep, live: LiveDep, caller: OperatorDep
) -> FeedbackResponse:
    """Record what the operator did with a suggestion (accepted, corrected or rejected); role operator."""
    _check_against_taxonomy(body, predictor.taxonomy)
    _check_correction(body)
    turns: tuple[dict[str, str], ...] | None
    if body.turns:
        turns = tuple({"role": t.role, "text": t.text} for t in body.turns)
    elif body.text:
        turns = ({"role": "client", "text": body.text},)
    else:  # the live session's turns, when it is still held and this key started it (read on the event loop)
        session = live.sessions.get(body.interaction_id)
        if session is not None and session.key_id != caller.key_id:
            session = None
        turns = tuple({"role": t.role, "text": t.text} for t in session.window()) if session else None
    task, suggested, chosen = _stored_labels(body, predictor.taxonomy)
    record = Feedback(
        interaction_id=body.interaction_id,
        model_version=body.model_version,
        task=task,
        suggested=suggested,
        chosen=chosen,
        accepted=body.accepted,
        operator_id=body.operator_id,
        client_id=body.client_id,
        channel=body.channel,
        confidence=body.confidence,
        turns=turns or None,
        comment=body.comment,
    )
    closed = _closes(body, predictor.taxonomy)
    feedback_id = await run_in_threadpool(_write, store, record, closed)
    return FeedbackResponse(id=feedback_id, interaction_id=body.interaction_id, closed=closed)


@router.get("/stats", responses=_ERRORS)
def stats(store: StoreDep, _: AnalystDep, model_version: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    """Acceptance rate overall, per model version, per task and per task and suggested label (role analyst)."""
    return dict(store.get().stats(model_version=model_version))  # the Stats shape, served as an open object


@router.get("/feedback/export", responses=_ERRORS, response_class=StreamingResponse)
def export(holder: StoreDep, _: AdminDep, model_version: str | None = Query(None, max_length=200)) -> StreamingResponse:
    """Accepted and corrected labels as JSONL training records (``podskazka train --data``); role admin."""
    store = holder.get()

    def lines() -> Iterator[str]:
        for record in export_training_records(store, model_version=model_version):
            yield json.dumps(record, ensure_ascii=False) + "\n"

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"content-disposition": 'attachment; filename="feedback-export.jsonl"'},
    )
