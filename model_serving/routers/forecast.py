"""``/v1/forecast``: online features for the entities -> the champion bundle -> H timestamped values."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response

from model_serving.dependencies import ForecastBatcher, get_ready_batcher
from model_serving.forecasting import NotReadyError, StaleFeaturesError
from model_serving.metrics import ERRORS
from model_serving.runtime import StoreUnavailableError, UnknownEntityError
from model_serving.schemas import BatchForecast, BatchForecastRequest, ErrorBody, Forecast, ForecastRequest

router = APIRouter(prefix="/v1", tags=["forecast"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Unknown entity."},
    503: {"model": ErrorBody, "description": "Model or feature store unavailable, or stale features refused."},
}


async def _forecast(batcher: ForecastBatcher, entity_ids: list[str]) -> list[Forecast]:
    """This request's forecasts, computed in one batch with the requests that arrived alongside it."""
    try:
        return await batcher.submit(entity_ids)
    except UnknownEntityError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except StoreUnavailableError as exc:
        ERRORS.labels(reason="store_unavailable").inc()
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except NotReadyError as exc:
        ERRORS.labels(reason="not_ready").inc()
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except StaleFeaturesError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None


@router.post("/forecast", response_model=Forecast, responses=ERROR_RESPONSES)
async def forecast(body: ForecastRequest, batcher: Annotated[ForecastBatcher, Depends(get_ready_batcher)]) -> Response:
    # Serialized here, by pydantic: FastAPI would validate the model it was just built from again.
    result = (await _forecast(batcher, [body.entity_id]))[0]
    return Response(result.model_dump_json(), media_type="application/json")


@router.post("/forecast/batch", response_model=BatchForecast, responses={**ERROR_RESPONSES, 413: {"model": ErrorBody}})
async def forecast_batch(
    body: BatchForecastRequest, batcher: Annotated[ForecastBatcher, Depends(get_ready_batcher)]
) -> Response:
    limit = batcher.max_entities
    if len(body.entity_ids) > limit:
        raise HTTPException(status_code=413, detail=f"at most {limit} entities per request")
    result = BatchForecast(forecasts=await _forecast(batcher, list(dict.fromkeys(body.entity_ids))))
    return Response(result.model_dump_json(), media_type="application/json")
