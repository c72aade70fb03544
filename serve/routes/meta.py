"""Model, taxonomy and health endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from serve.deps import PredictorDep

router = APIRouter(tags=["meta"])


@router.get("/v1/taxonomy")
def taxonomy(predictor: PredictorDep) -> dict:
    """The label sets and macro library the served model was trained with."""
    return predictor.taxonomy.to_dict()


@router.get("/v1/model")
def model_info(predictor: PredictorDep) -> dict:
    """The served bundle's manifest, metrics included."""
    return {"model_version": predictor.model_version, "manifest": predictor.bundle.manifest}


@router.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request):
    predictor = getattr(request.app.state, "predictor", None)
    if predictor is None:
        return JSONResponse(
            status_code=503,
            content={"error": {"code": "not_ready", "message": "no model is loaded yet", "details": []}},
        )
    return {"status": "ready", "model_version": predictor.model_version}
