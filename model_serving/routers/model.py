"""``/v1/model``: which registry version is serving, since when, and its registry tags."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from model_serving.dependencies import get_model
from model_serving.runtime import ModelHandle
from model_serving.schemas import ErrorBody, ModelInfo

router = APIRouter(prefix="/v1", tags=["model"])


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {503: {"model": ErrorBody, "description": "No model loaded."}}


@router.get("/model", response_model=ModelInfo, responses=ERROR_RESPONSES)
def model_info(model: Annotated[ModelHandle, Depends(get_model)]) -> ModelInfo:
    return ModelInfo(name=model.name, version=model.version, loaded_at=model.loaded_at, tags=model.tags)
