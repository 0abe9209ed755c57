"""``/v1/model``: which registry version is serving, since when, its family, training window and band
levels (its registry tags are an operator's: ``/admin/model``); ``/v1/model/choice``: which candidates
it forecasts each series with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from model_registry.registry import data_window
from model_serving.dependencies import get_model
from model_serving.runtime import ModelHandle
from model_serving.schemas import ErrorBody, ModelChoice, ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {503: {"model": ErrorBody, "description": "No model loaded."}}


@router.get("/model", response_model=ModelInfo, responses=ERROR_RESPONSES)
def model_info(model: Annotated[ModelHandle, Depends(get_model)]) -> ModelInfo:
    start, end = data_window(model.tags)
    return ModelInfo(
        name=model.name,
        version=model.version,
        family=model.family,
        loaded_at=model.loaded_at,
        trained_from=start,
        trained_to=end,
        interval_levels=list(model.calibration.levels) if model.calibration is not None else [],
    )


@router.get("/model/choice", response_model=ModelChoice, responses=ERROR_RESPONSES)
def model_choice(model: Annotated[ModelHandle, Depends(get_model)]) -> ModelChoice:
    """The per-series choice of a selection version; a version of one family names that family for
    every series (``default``) and no series of its own."""
    if model.choice is None:
        own = [model.family] if model.family else []
        return ModelChoice(version=model.version, family=model.family, default=own, series={})
    choice = model.choice
    return ModelChoice(
        version=model.version,
        family=model.family,
        default=choice.default,
        series=choice.series,
        combine=choice.combine,
        default_weights=choice.default_weights,
        weights=choice.weights,
    )
