"""Typed dependencies: the predictor and the settings, taken from the app state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from model.predictor import Predictor
from serve.settings import Settings


def get_predictor(request: Request) -> Predictor:
    predictor = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise HTTPException(status_code=503, detail="no model is loaded yet; retry when /readyz answers 200")
    return predictor


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
