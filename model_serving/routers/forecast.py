"""``/v1/forecast``: online features for the entities -> the champion bundle -> H timestamped values."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response

from model_serving.dependencies import ForecastBatcher, Unavailable, get_ready_batcher
from model_serving.forecasting import NotReadyError, StaleFeaturesError
from model_serving.metrics import ERRORS
from model_serving.runtime import StoreUnavailableError, UnknownEntityError
from model_serving.schemas import (
    BODY_ERRORS,
    Answer,
    BatchForecast,
    BatchForecastRequest,
    ErrorBody,
    Forecast,
    ForecastRequest,
    json_body,
)

router = APIRouter(prefix="/v1", tags=["forecast"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    **BODY_ERRORS,
    404: {"model": ErrorBody, "description": "Unknown entity."},
    503: {"model": ErrorBody, "description": "Model or feature store unavailable, or stale features refused."},
}


# What a request's own failure answers, and the reason it is counted under. The client's own entities
# (unknown, or their features stale) are named; a failure of the service's side answers a stable
# message with an error id, its cause in the log (Unavailable).
FAILURES: tuple[tuple[type[Exception], int, str, str | None], ...] = (
    (UnknownEntityError, 404, "unknown_entity", None),
    (StoreUnavailableError, 503, "store_unavailable", "online store read failed"),
    (StaleFeaturesError, 503, "stale_features", None),
    (NotReadyError, 503, "not_ready", "service not ready"),
)


async def _forecast(batcher: ForecastBatcher, entity_ids: list[str]) -> list[Answer]:
    """This request's forecasts, computed in one batch with the requests that arrived alongside it."""
    try:
        return await batcher.submit(entity_ids)
    except tuple(kind for kind, _, _, _ in FAILURES) as exc:
        status, reason, stable = next((s, r, m) for kind, s, r, m in FAILURES if isinstance(exc, kind))
        ERRORS.labels(reason=reason).inc()
        if stable is not None:
            raise Unavailable(stable, exc) from None
        raise HTTPException(status_code=status, detail=str(exc)) from None


@router.post("/forecast", response_model=Forecast, responses=ERROR_RESPONSES)
async def forecast(body: ForecastRequest, batcher: Annotated[ForecastBatcher, Depends(get_ready_batcher)]) -> Response:
    # The schema's JSON, written here: FastAPI would build and validate the response model first.
    result = (await _forecast(batcher, [body.entity_id]))[0]
    return Response(json_body(result.document()), media_type="application/json")


@router.post("/forecast/batch", response_model=BatchForecast, responses=ERROR_RESPONSES)
async def forecast_batch(
    body: BatchForecastRequest, batcher: Annotated[ForecastBatcher, Depends(get_ready_batcher)]
) -> Response:
    limit = batcher.max_entities
    if len(body.entity_ids) > limit:
        raise HTTPException(status_code=413, detail=f"at most {limit} entities per request")
    answers = await _forecast(batcher, list(dict.fromkeys(body.entity_ids)))
    return Response(json_body({"forecasts": [answer.document() for answer in answers]}), media_type="application/json")
