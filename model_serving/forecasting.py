"""Forecasts for a batch of requests: one online read and one predict, answers split per request.

Three steps, each one walk: :func:`admit` checks each request against the online read (an entity
the store does not know, features past the TTL) and keeps, per entity, where its features are and
how old they are; :func:`predict` runs the model and its bands once over the admitted entities;
:func:`assemble` turns each admitted entity and its prediction into its answer.

Errors that concern one request (an unknown entity, stale features under the ``refuse`` policy) are
returned for that request alone; the others in the batch are answered. A store that cannot be read
fails the whole batch.

An answer stays plain values (:class:`~model_serving.schemas.Answer`) until its body is written: a
pydantic object per step and per band, validated field by field, cost a batch of 100 entities
several times its read and predict together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from model_serving.metrics import FEATURE_AGE, MISSING_FEATURES, PREDICTION_VALUES, STALE_FEATURES, observe_all
from model_serving.online_features import OnlineRows, UnknownEntityError
from model_serving.runtime import ModelHandle, ServingRuntime
from model_serving.schemas import Answer


class NotReadyError(RuntimeError):
    """No model or feature reader is loaded yet."""


class StaleFeaturesError(RuntimeError):
    """Features older than the feature view's TTL, refused by the ``refuse`` policy."""


@dataclass(frozen=True)
class Admitted:
    """An entity of an admitted request: its row in the batch's online read and its features' age."""

    entity_id: str
    row: int
    event_time: datetime
    age_seconds: float
    stale: bool  # older than the feature view's TTL (served anyway under the ``serve`` policy)


@dataclass(frozen=True)
class Predictions:
    """One predict over a batch's admitted entities: the point forecasts (entity by step, in the order
    of the admitted entities), each level's bands alike, and what every answer of the batch says of its
    intervals."""

    index: dict[int, int]  # an entity's row in the online read -> its row here
    values: np.ndarray
    bands: list[tuple[float, np.ndarray, np.ndarray]]  # (level, lower, upper), narrowest level first
    note: str | None  # why there are no intervals, when there are none


# Per request: its admitted entities, or the error that answers it.
Admission = list[Admitted] | Exception


def forecast_requests(runtime: ServingRuntime, requests: list[list[str]]) -> list[list[Answer] | Exception]:
    """Each request's forecasts (or the error that concerns it alone), from one read and one predict."""
    model, reader = runtime.model, runtime.features  # read once: a swap mid-batch must not mix two versions
    if model is None or reader is None:
        raise NotReadyError(f"service not ready: {runtime.error or 'loading'}")
    entity_ids = [entity for request in requests for entity in request]
    # StoreUnavailableError fails every request
    rows = reader.read(entity_ids, model.input_columns, history=model.history_column is not None)
    admitted = admit(runtime, requests, rows, datetime.now(UTC))
    served = [entity for admission in admitted if not isinstance(admission, Exception) for entity in admission]
    if not served:  # every request refused (or empty): nothing to predict, nothing to record
        return [admission if isinstance(admission, Exception) else [] for admission in admitted]
    answers = assemble(runtime, model, admitted, predict(model, rows, served))
    if runtime.ledger is not None:
        runtime.ledger.record([f for answer in answers if not isinstance(answer, Exception) for f in answer])
    return answers


def admit(runtime: ServingRuntime, requests: list[list[str]], rows: OnlineRows, now: datetime) -> list[Admission]:
    """Walk the requests over the batch's online read (their entities' rows follow each other in
    request order): each request's entities with their features' age, or the error that refuses it.
    The features' age is observed for every request whose entities the store all knows, stale ones
    counted whether refused or served."""
    ttl = runtime.dataset.feature_engineering.ttl
    ttl_seconds = ttl.total_seconds()
    refuse = runtime.settings.stale_features == "refuse"
    admitted: list[Admission] = []
    start = 0
    for request in requests:
        times = [(row, entity, rows.event_times[row]) for row, entity in enumerate(request, start)]
        start += len(request)
        unknown = [entity for _, entity, event_time in times if event_time is None]
        if unknown:
            admitted.append(UnknownEntityError(unknown))
            continue
        behind = _without_history(rows, times)
        if behind:
            admitted.append(
                StaleFeaturesError(
                    f"no history of {', '.join(behind)} at its features' time: the model forecasts from each "
                    "series' history, which the online store holds for another time (it needs a materialization)"
                )
            )
            continue
        entities = []
        for row, entity, event_time in times:
            assert event_time is not None
            age = (now - event_time).total_seconds()
            entities.append(Admitted(entity, row, event_time, age, stale=age > ttl_seconds))
            FEATURE_AGE.observe(age)
        stale = [entity.entity_id for entity in entities if entity.stale]
        if stale:
            STALE_FEATURES.labels(action="refused" if refuse else "served").inc(len(stale))
            if refuse:
                admitted.append(
                    StaleFeaturesError(
                        f"stale features for {', '.join(stale)}: older than the feature view's TTL ({ttl}); "
                        "the online store needs a materialization"
                    )
                )
                continue
        admitted.append(entities)
    return admitted


def _without_history(rows: OnlineRows, times: list[tuple[int, str, datetime | None]]) -> list[str]:
    """The entities whose history (where the model reads one) is missing or not at their features'
    time: a forecast from it would start elsewhere than its answer says."""
    if rows.histories is None or rows.history_times is None:
        return []
    return [
        entity
        for row, entity, event_time in times
        if rows.histories[row] is None or rows.history_times[row] != event_time
    ]


def predict(model: ModelHandle, rows: OnlineRows, served: list[Admitted]) -> Predictions:
    """One predict, and the version's bands, over the admitted entities' feature rows; counts the
    missing feature values and observes every forecast value."""
    everyone = len(served) == len(rows.event_times)
    features = rows.features if everyone else rows.features.iloc[[e.row for e in served]].reset_index(drop=True)
    missing = np.isnan(features.to_numpy()).sum(axis=0)
    for column in np.flatnonzero(missing):
        MISSING_FEATURES.labels(feature=str(features.columns[column])).inc(int(missing[column]))
    inputs = features
    if model.history_column and model.time_column and model.entity_column and rows.histories is not None:
        inputs = features.assign(
            **{
                model.entity_column: [entity.entity_id for entity in served],
                model.time_column: pd.DatetimeIndex([e.event_time for e in served]).tz_convert("UTC").tz_localize(None),
                model.history_column: [rows.histories[entity.row] for entity in served],
            }
        )
    values = model.predict(inputs)
    observe_all(PREDICTION_VALUES, values)
    bands: list[tuple[float, np.ndarray, np.ndarray]] = []
    if model.calibration is not None:
        computed = model.calibration.bands(values, [entity.entity_id for entity in served], features)
        bands = [(level, lo, hi) for level, (lo, hi) in computed.items()]
    note = None if bands else f"version {model.version} was registered without interval calibration"
    return Predictions({entity.row: n for n, entity in enumerate(served)}, values, bands, note)


def assemble(
    runtime: ServingRuntime, model: ModelHandle, admitted: list[Admission], predictions: Predictions
) -> list[list[Answer] | Exception]:
    """Each request's answer: its error, or one forecast per entity, timestamped from its features'
    event time on, one step after another."""
    frequency = runtime.frequency()
    levels = [level for level, _, _ in predictions.bands]

    def forecast(entity: Admitted) -> Answer:
        n = predictions.index[entity.row]
        values = predictions.values[n].tolist()
        return Answer(
            entity_id=entity.entity_id,
            model_name=model.name,
            model_version=model.version,
            feature_event_time=entity.event_time,
            feature_age_seconds=entity.age_seconds,
            stale=entity.stale,
            interval_levels=levels,
            note=predictions.note,
            model_family=model.family,
            answered_by=None if model.choice is None else model.choice.of(entity.entity_id),
            targets=frequency.ahead(entity.event_time, len(values)),
            values=values,
            bands=[(lower[n].tolist(), upper[n].tolist()) for _, lower, upper in predictions.bands],
        )

    return [
        admission if isinstance(admission, Exception) else [forecast(entity) for entity in admission]
        for admission in admitted
    ]
