"""Request and response bodies of the forecasting API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

from core.api_limits import ENTITY_ID_MAX_CHARS

# The length limit lives in core: the settings derive the request byte limit from it.
EntityId = Annotated[str, Field(min_length=1, max_length=ENTITY_ID_MAX_CHARS)]


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_id: EntityId = Field(examples=["ETTh1"])


class BatchForecastRequest(BaseModel):
    """``entity_ids`` holds at most ``MLOPS_MAX_BATCH_ENTITIES`` ids: the app's schema states its own limit."""

    model_config = ConfigDict(extra="forbid")
    entity_ids: list[EntityId] = Field(min_length=1, examples=[["ETTh1", "ETTh2"]])


class Band(BaseModel):
    """A prediction interval of one step: the target should fall in ``[lower, upper]`` with probability
    ``level`` (split conformal on the version's backtest errors; measured, not guaranteed)."""

    level: float = Field(description="Nominal coverage, e.g. 0.8.", examples=[0.8])
    lower: float
    upper: float


class ForecastPoint(BaseModel):
    timestamp: datetime
    value: float = Field(description="The point forecast.")
    intervals: list[Band] = Field(
        default_factory=list,
        description="One band per level of the version, narrowest first; empty when the version has none.",
    )


class Forecast(BaseModel):
    entity_id: str
    model_name: str
    model_version: str
    feature_event_time: datetime = Field(description="Event time of the features the forecast used.")
    feature_age_seconds: float = Field(description="Seconds between that event time and the answer.")
    stale: bool = Field(description="True when the features are older than the feature view's TTL.")
    interval_levels: list[float] = Field(
        default_factory=list, description="The levels of every step's intervals; empty: point forecasts only."
    )
    note: str | None = Field(default=None, description="Why intervals are missing, when they are.")
    model_family: str | None = Field(default=None, description="The family of the version that answered.")
    answered_by: list[str] | None = Field(
        default=None,
        description="The candidates this entity's forecast came from, where the version chose among candidates "
        "(one: that candidate's forecast; several: their combination); naive is the last value.",
    )
    forecast: list[ForecastPoint]


@dataclass(frozen=True, slots=True)
class Answer:
    """One entity's forecast as the service computes it: :class:`Forecast`'s fields in plain values,
    each step's value and each level's bands as lists. :meth:`document` is the content of its JSON
    body: the service writes that body without a pydantic object per step and per band, which cost a
    batch of 100 entities more than its read and predict together."""

    entity_id: str
    model_name: str
    model_version: str
    feature_event_time: datetime
    feature_age_seconds: float
    stale: bool
    interval_levels: list[float]
    note: str | None  # why there are no intervals, when there are none
    model_family: str | None
    answered_by: list[str] | None
    targets: list[datetime]  # each step's timestamp
    values: list[float]  # each step's point forecast
    bands: list[tuple[list[float], list[float]]]  # per level of interval_levels: each step's (lower, upper)

    def document(self) -> dict[str, Any]:
        """The ``Forecast`` schema's content, field for field, in plain values."""
        levels = list(zip(self.interval_levels, self.bands, strict=True))
        return {
            "entity_id": self.entity_id,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "feature_event_time": self.feature_event_time,
            "feature_age_seconds": self.feature_age_seconds,
            "stale": self.stale,
            "interval_levels": self.interval_levels,
            "note": self.note,
            "model_family": self.model_family,
            "answered_by": self.answered_by,
            "forecast": [
                {
                    "timestamp": target,
                    "value": value,
                    "intervals": [
                        {"level": level, "lower": lower[h], "upper": upper[h]} for level, (lower, upper) in levels
                    ],
                }
                for h, (target, value) in enumerate(zip(self.targets, self.values, strict=True))
            ],
        }

    def model(self) -> Forecast:
        """The answer as the schema's object, validated."""
        return Forecast.model_validate(self.document())


def json_body(content: Any) -> bytes:
    """JSON as pydantic writes a model's (``model_dump_json``): the same encoder, NaN and infinities
    as ``null``. A test holds an answer's body to its validated model's bytes."""
    return pydantic_core.to_json(content, inf_nan_mode="null")


class BatchForecast(BaseModel):
    forecasts: list[Forecast]


class StoredForecast(BaseModel):
    """A forecast the platform issued and kept (the forecast table), as it was issued."""

    entity_id: str
    data_date: date = Field(description="The day whose data the forecast was issued from.")
    issue_time: datetime = Field(description="Event time of the features the forecast used.")
    source: str = Field(description="batch: the daily batch forecast.")
    model_name: str
    model_version: str
    forecast: list[ForecastPoint]


class ErrorBody(BaseModel):
    detail: str
    error_id: str | None = Field(
        default=None,
        description="503 only: the id under which the service logged the cause; quote it to its operators.",
    )


# Answers of every route that reads a JSON body, before the route runs. The app's schema replaces the
# 413 description by one that states the configured figures (body_too_large_description).
BODY_ERRORS: dict[int | str, dict[str, object]] = {
    400: {"model": ErrorBody, "description": "The body is not readable JSON."},
    413: {
        "model": ErrorBody,
        "description": "The body is larger than MLOPS_MAX_REQUEST_BYTES, or a batch holds "
        "more than MLOPS_MAX_BATCH_ENTITIES ids.",
    },
}


def body_too_large_description(max_bytes: int, max_entities: int) -> str:
    """The 413 answer with the configured limits: a client reading the schema knows the figures, not
    only the names of the settings that hold them."""
    return (
        f"The body is larger than {max_bytes} bytes (MLOPS_MAX_REQUEST_BYTES), or a batch holds more "
        f"than {max_entities} ids (MLOPS_MAX_BATCH_ENTITIES). Every body the schema allows, sent as "
        "json.dumps writes it, is within the byte limit."
    )


class Readiness(BaseModel):
    ready: bool
    model_name: str
    model_version: str | None
    reason: str | None = Field(
        default=None, description="Why not ready: 'loading', 'no model loaded' or 'online store unreachable'."
    )
    error_id: str | None = Field(default=None, description="Where the service's log gives the cause.")


class ModelInfo(BaseModel):
    """What a client needs of the version that answers: the registry's tags (paths, gate reasons,
    lineage) are for operators, at ``GET /admin/model``."""

    name: str
    version: str
    family: str | None = Field(description="The version's model family (None: a bundle that does not say).")
    loaded_at: datetime = Field(description="When this version was loaded and warmed.")
    trained_from: str | None = Field(description="The first target time of the rows it was fit on.")
    trained_to: str | None = Field(description="The last target time of the rows it was fit on.")
    interval_levels: list[float] = Field(description="The levels of the bands it answers with (none: points only).")


class ModelDetail(BaseModel):
    """``GET /admin/model``: the serving version with every registry tag, as read when it was loaded."""

    name: str
    version: str
    loaded_at: datetime
    tags: dict[str, str]


class ModelChoice(BaseModel):
    """Which candidates the serving version forecasts each series with (a version of the ``selection``
    family; any other answers with its own family for every series)."""

    version: str
    family: str | None = Field(description="The serving version's family.")
    default: list[str] = Field(description="The candidates of a series the choice does not name (e.g. a new one).")
    series: dict[str, list[str]] = Field(
        description="Per series, the candidates whose forecasts it takes (several: combined step by step)."
    )
    combine: str | None = Field(
        default=None, description="How several candidates combine: median, mean or weighted (null: one family)."
    )
    default_weights: list[float] | None = Field(
        default=None, description="A weighted combination's weights of the default candidates, in their order."
    )
    weights: dict[str, list[float]] | None = Field(
        default=None, description="A weighted combination's weights per series, in the order of its candidates."
    )


class ReloadResult(BaseModel):
    swapped: bool = Field(description="True when a new version was loaded and swapped in.")
    version: str
    loaded_at: datetime
