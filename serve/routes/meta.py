"""Model, taxonomy and health endpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve.auth import AnalystDep, OperatorDep
from serve.deps import LoadedPredictorDep, PredictorDep, ReloaderDep
from serve.schemas import ERRORS

router = APIRouter(tags=["meta"])


@router.get("/v1/taxonomy", responses=ERRORS)
def taxonomy(predictor: PredictorDep, _: OperatorDep) -> dict[str, Any]:
    """The label sets and macro library the served model was trained with (role operator)."""
    return predictor.taxonomy.to_dict()


@router.get("/v1/model", responses=ERRORS)
def model_info(predictor: PredictorDep, reloader: ReloaderDep, _: AnalystDep) -> dict[str, Any]:
    """The served bundle's manifest, metrics included (role analyst)."""
    return {
        "model_version": predictor.model_version,
        "manifest": predictor.bundle.manifest.to_dict(),
        "reload": reloader.status() if reloader is not None else None,
    }


@router.get("/healthz")
async def healthz() -> dict[str, Any]:
    """Liveness, answered on the event loop (never behind the model's queue). No key needed."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)  # a 503 JSONResponse or the status object
async def readyz(predictor: LoadedPredictorDep, reloader: ReloaderDep) -> JSONResponse | dict[str, Any]:
    """Readiness: 503 until a model is loaded; says the served version. No key needed."""
    if predictor is None:
        return JSONResponse(
            status_code=503,
            content={"error": {"code": "not_ready", "message": "no model is loaded yet", "details": []}},
        )
    if reloader is not None and reloader.last_error is not None:  # still serving the old model; the
        return {
            "status": "ready",
            "model_version": predictor.model_version,  # reason: GET /v1/model
            "reload_failed": True,
        }
    return {"status": "ready", "model_version": predictor.model_version}
