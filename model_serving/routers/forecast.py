"""``/v1/forecast``: online features for the entities -> the champion bundle -> H timestamped values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.concurrency import run_in_threadpool

from model_serving.dependencies import get_ready_runtime
from model_serving.metrics import (
    ERRORS,
    FEATURE_AGE,
    MISSING_FEATURES,
    PREDICTION_VALUES,
    STALE_FEATURES,
)
from model_serving.runtime import ServingRuntime, StoreUnavailableError, UnknownEntityError
from model_serving.schemas import (
    BatchForecast,
    BatchForecastRequest,
    ErrorBody,
    Forecast,
    ForecastPoint,
    ForecastRequest,
)

router = APIRouter(prefix="/v1", tags=["forecast"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "Unknown entity."},
    503: {"model": ErrorBody, "description": "Model or feature store unavailable."},
}


def _forecast(runtime: ServingRuntime, entity_ids: list[str]) -> list[Forecast]:
    model = runtime.model  # read once: a champion swap mid-request must not mix two versions
    assert model is not None
    assert runtime.features is not None
    try:
        rows = runtime.features.read(entity_ids, model.input_columns)
    except UnknownEntityError as exc:
        ERRORS.labels(reason="unknown_entity").inc()
        raise HTTPException(status_code=404, detail=f"unknown entity: {', '.join(exc.args[0])}") from None
    except StoreUnavailableError as exc:
        ERRORS.labels(reason="store_unavailable").inc()
        raise HTTPException(status_code=503, detail=str(exc)) from None
    ages = _judge_freshness(runtime, entity_ids, rows.event_times)
    missing = np.isnan(rows.features.to_numpy()).sum(axis=0)
    for column in np.flatnonzero(missing):
        MISSING_FEATURES.labels(feature=str(rows.features.columns[column])).inc(int(missing[column]))
    predictions = model.predict(rows.features).to_numpy()
    for value in predictions.ravel().tolist():
        PREDICTION_VALUES.observe(value)
    step, ttl = runtime.step(), runtime.dataset.feature_engineering.ttl.total_seconds()
    return [
        Forecast(
            entity_id=entity,
            model_name=model.name,
            model_version=model.version,
            feature_event_time=event_time,
            feature_age_seconds=age,
            stale=age > ttl,
            forecast=[
                ForecastPoint(timestamp=event_time + (h + 1) * step, value=float(value))
                for h, value in enumerate(values)
            ],
        )
        for entity, event_time, age, values in zip(entity_ids, rows.event_times, ages, predictions, strict=True)
    ]


def _judge_freshness(runtime: ServingRuntime, entity_ids: list[str], event_times: list[datetime]) -> list[float]:
    """Ages of the features in seconds; stale ones (older than the feature view's TTL, which Feast
    does not enforce on online reads) are counted and, under the ``refuse`` policy, answered with 503."""
    now = datetime.now(UTC)
    ages = [(now - t).total_seconds() for t in event_times]
    ttl = runtime.dataset.feature_engineering.ttl.total_seconds()
    stale = [e for e, age in zip(entity_ids, ages, strict=True) if age > ttl]
    for age in ages:
        FEATURE_AGE.observe(age)
    if stale:
        refuse = runtime.settings.stale_features == "refuse"
        STALE_FEATURES.labels(action="refused" if refuse else "served").inc(len(stale))
        if refuse:
            ERRORS.labels(reason="stale_features").inc()
            raise HTTPException(
                status_code=503,
                detail=f"stale features for {', '.join(stale)}: older than the feature view's TTL "
                f"({runtime.dataset.feature_engineering.ttl}); the online store needs a materialization",
            )
    return ages


@router.post("/forecast", response_model=Forecast, responses=ERROR_RESPONSES)
async def forecast(body: ForecastRequest, runtime: Annotated[ServingRuntime, Depends(get_ready_runtime)]) -> Response:
    # Serialized here, by pydantic: FastAPI would validate the model it was just built from again.
    result = (await run_in_threadpool(_forecast, runtime, [body.entity_id]))[0]
    return Response(result.model_dump_json(), media_type="application/json")


@router.post("/forecast/batch", response_model=BatchForecast, responses={**ERROR_RESPONSES, 413: {"model": ErrorBody}})
async def forecast_batch(
    body: BatchForecastRequest, runtime: Annotated[ServingRuntime, Depends(get_ready_runtime)]
) -> Response:
    limit = runtime.settings.max_batch_entities
    if len(body.entity_ids) > limit:
        raise HTTPException(status_code=413, detail=f"at most {limit} entities per request")
    entity_ids = list(dict.fromkeys(body.entity_ids))
    result = BatchForecast(forecasts=await run_in_threadpool(_forecast, runtime, entity_ids))
    return Response(result.model_dump_json(), media_type="application/json")
