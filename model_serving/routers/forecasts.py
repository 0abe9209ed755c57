"""``/v1/forecasts``: the forecasts the platform issued and stored, as they were issued.

The cheap, consistent answer most batch consumers want: the day's batch forecast of an entity, read
from the forecast table (the same for every caller of that day), not computed again.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from model_serving.dependencies import get_runtime
from model_serving.runtime import ServingRuntime
from model_serving.schemas import Band, EntityId, ErrorBody, ForecastPoint, StoredForecast

router = APIRouter(prefix="/v1", tags=["forecast"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorBody, "description": "No forecast of the entity was stored for that day."},
}


@router.get("/forecasts", response_model=StoredForecast, responses=ERROR_RESPONSES)
def stored_forecast(
    runtime: Annotated[ServingRuntime, Depends(get_runtime)],
    entity_id: Annotated[EntityId, Query(examples=["ETTh1"])],
    issued: Annotated[date | None, Query(description="The day it was issued from (default: the newest).")] = None,
) -> StoredForecast:
    from forecast_store import store

    settings, dataset = runtime.settings, runtime.dataset
    day = issued
    if store.ready(settings) and day is None:
        day = store.latest_day(settings, dataset.name)
    rows = store.issued(settings, dataset.name, entity_id, day) if day is not None and store.ready(settings) else []
    if not rows:
        raise HTTPException(status_code=404, detail=f"no stored forecast of {entity_id} issued on {day or 'any day'}")
    first = rows[0]
    return StoredForecast(
        entity_id=first.entity_id,
        data_date=first.data_date,
        issue_time=first.issue_time,
        source=first.source,
        model_name=first.model_name,
        model_version=first.model_version,
        forecast=[
            ForecastPoint(
                timestamp=r.target_time,
                value=r.value,
                intervals=[Band(level=level, lower=lower, upper=upper) for level, lower, upper in r.intervals],
            )
            for r in rows
        ],
    )
