"""``POST /v1/suggest`` and ``POST /v1/suggest/batch``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from model.assist.duplicates import duplicate_tasks
from model.conversation.record import interaction_from_dict
from serve import metrics
from serve.auth import OperatorDep
from serve.deps import PredictorDep, SettingsDep
from serve.duplicates import duplicate_for_request
from serve.schemas import ERRORS as _ERRORS
from serve.schemas import BatchRequest, BatchResponse, SuggestRequest, SuggestResponse

router = APIRouter(prefix="/v1", tags=["suggest"])


def _suggest(predictor, settings, requests: list[SuggestRequest], where: str, store=None) -> list[SuggestResponse]:
    interactions = []
    for i, req in enumerate(requests):
        row = req.model_dump()
        interactions.append(interaction_from_dict(row, where=where.format(i=i)))
    # one model call per distinct (tasks, top_k) so a batch stays batched
    out: list[SuggestResponse | None] = [None] * len(requests)
    keys: dict[tuple, list[int]] = {}
    for i, req in enumerate(requests):
        tasks = predictor.check_tasks(req.tasks)
        keys.setdefault((tuple(tasks), req.top_k or settings.default_top_k), []).append(i)
    for (tasks, top_k), idx in keys.items():
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
    return out  # type: ignore[return-value]


@router.post("/suggest", response_model=SuggestResponse, responses=_ERRORS)
async def suggest(
    request: SuggestRequest, predictor: PredictorDep, settings: SettingsDep, http: Request, _: OperatorDep
) -> SuggestResponse:
    """Ranked labels per task with confidences, and macros, for one conversation (or its turns so far).
    The model runs in the bounded pool: 503 with Retry-After when it is full."""
    results = await http.app.state.pool.run(_suggest, predictor, settings, [request], "request", http.app.state.store)
    return results[0]


@router.post("/suggest/batch", response_model=BatchResponse, responses=_ERRORS)
async def suggest_batch(
    request: BatchRequest, predictor: PredictorDep, settings: SettingsDep, http: Request, _: OperatorDep
) -> BatchResponse:
    """The same for up to 256 conversations in one call."""
    results = await http.app.state.pool.run(
        _suggest, predictor, settings, request.interactions, "interactions[{i}]", http.app.state.store
    )
    return BatchResponse(model_version=predictor.model_version, results=results)
