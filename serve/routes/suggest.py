"""``POST /v1/suggest`` and ``POST /v1/suggest/batch``."""

from __future__ import annotations

import time

from fastapi import APIRouter

from model.assist.duplicates import duplicate_tasks
from model.conversation.record import interaction_from_dict
from model.predictor import Predictor
from serve import metrics
from serve.auth import OperatorDep
from serve.deps import PoolDep, PredictorDep, SettingsDep, StoreDep
from serve.duplicates import duplicate_for_request
from serve.feedback_store import StoreHolder
from serve.schemas import ERRORS as _ERRORS
from serve.schemas import BatchRequest, BatchResponse, SuggestRequest, SuggestResponse
from serve.settings import Settings

router = APIRouter(prefix="/v1", tags=["suggest"])


def _suggest(
    predictor: Predictor,
    settings: Settings,
    requests: list[SuggestRequest],
    where: str,
    store: StoreHolder | None = None,
) -> list[SuggestResponse]:
    """The responses to ``requests`` (runs in the model pool). One model call per distinct (tasks,
    top_k), so a batch stays batched; with a store, requests that carry an interaction id and a client
    id are remembered and checked for a duplicate. ``where`` names a request in errors (``{i}``: its index)."""
    interactions = [interaction_from_dict(req.model_dump(), where=where.format(i=i)) for i, req in enumerate(requests)]
    out: dict[int, SuggestResponse] = {}
    groups: dict[tuple[tuple[str, ...], int], list[int]] = {}
    for i, req in enumerate(requests):
        asked = predictor.check_tasks(req.tasks)
        groups.setdefault((tuple(asked), req.top_k or settings.default_top_k), []).append(i)
    for (tasks, top_k), idx in groups.items():
        # the duplicate check needs the problem task: it comes from the same model call, then is trimmed
        checked = store is not None and any(requests[i].interaction_id and requests[i].client_id for i in idx)
        extra = [t for t in duplicate_tasks(predictor.taxonomy, predictor.tasks) if t not in tasks] if checked else []
        results = predictor.predict(
            [interactions[i] for i in idx], tasks=list(tasks) + extra, top_k=top_k, top_macros=settings.top_macros
        )
        for i, result in zip(idx, results):
            duplicate = None
            if store is not None:  # with interaction_id and client_id: remember it, flag a likely duplicate
                duplicate = duplicate_for_request(
                    predictor,
                    store,
                    settings,
                    interaction=interactions[i],
                    interaction_id=requests[i].interaction_id,
                    client_id=requests[i].client_id,
                    result=result,
                    now=time.time(),
                )
            if extra:
                result = result.only(tasks)
            metrics.observe_result(result, tasks)  # confidence, abstention, top label per task
            out[i] = SuggestResponse(
                interaction_id=requests[i].interaction_id,
                model_version=predictor.model_version,
                **result.to_dict(),
                duplicate=duplicate,
            )
    return [out[i] for i in range(len(requests))]


@router.post("/suggest", response_model=SuggestResponse, responses=_ERRORS)
async def suggest(
    request: SuggestRequest,
    predictor: PredictorDep,
    settings: SettingsDep,
    pool: PoolDep,
    store: StoreDep,
    _: OperatorDep,
) -> SuggestResponse:
    """Ranked labels per task with confidences, and macros, for one conversation (or its turns so far).
    The model runs in the bounded pool: 503 with Retry-After when it is full."""
    results = await pool.run(_suggest, predictor, settings, [request], "request", store)
    return results[0]


@router.post("/suggest/batch", response_model=BatchResponse, responses=_ERRORS)
async def suggest_batch(
    request: BatchRequest,
    predictor: PredictorDep,
    settings: SettingsDep,
    pool: PoolDep,
    store: StoreDep,
    _: OperatorDep,
) -> BatchResponse:
    """The same for up to 256 conversations in one call."""
    results = await pool.run(_suggest, predictor, settings, request.interactions, "interactions[{i}]", store)
    return BatchResponse(model_version=predictor.model_version, results=results)
