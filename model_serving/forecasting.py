"""Forecasts for a batch of requests: one online read and one predict, answers split per request.

Errors that concern one request (an unknown entity, stale features under the ``refuse`` policy) are
returned for that request alone; the others in the batch are answered. A store that cannot be read
fails the whole batch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from model_serving.metrics import FEATURE_AGE, MISSING_FEATURES, PREDICTION_VALUES, STALE_FEATURES
from model_serving.online_features import UnknownEntityError
from model_serving.runtime import ServingRuntime
from model_serving.schemas import Band, Forecast, ForecastPoint


class NotReadyError(RuntimeError):
    """No model or feature reader is loaded yet."""


class StaleFeaturesError(RuntimeError):
    """Features older than the feature view's TTL, refused by the ``refuse`` policy."""


def forecast_requests(runtime: ServingRuntime, requests: list[list[str]]) -> list[list[Forecast] | Exception]:
    model, reader = runtime.model, runtime.features  # read once: a swap mid-batch must not mix two versions
    if model is None or reader is None:
        raise NotReadyError(f"service not ready: {runtime.error or 'loading'}")
    entity_ids = [entity for request in requests for entity in request]
    rows = reader.read(entity_ids, model.input_columns)  # StoreUnavailableError fails every request
    ttl = runtime.dataset.feature_engineering.ttl
    ttl_seconds = ttl.total_seconds()
    now = datetime.now(UTC)
    refuse = runtime.settings.stale_features == "refuse"

    answers: list[list[Forecast] | Exception] = []
    served: list[int] = []  # row numbers to predict, request after request
    start = 0
    for request in requests:
        span = range(start, start + len(request))
        start += len(request)
        unknown = [entity_ids[i] for i in span if rows.event_times[i] is None]
        if unknown:
            answers.append(UnknownEntityError(unknown))
            continue
        ages = {i: (now - rows.event_times[i]).total_seconds() for i in span}  # type: ignore[operator]
        for age in ages.values():
            FEATURE_AGE.observe(age)
        stale = [entity_ids[i] for i, age in ages.items() if age > ttl_seconds]
        if stale:
            STALE_FEATURES.labels(action="refused" if refuse else "served").inc(len(stale))
            if refuse:
                answers.append(
                    StaleFeaturesError(
                        f"stale features for {', '.join(stale)}: older than the feature view's TTL ({ttl}); "
                        "the online store needs a materialization"
                    )
                )
                continue
        answers.append([])
        served.extend(span)
    if not served:
        return answers

    features = rows.features if len(served) == len(entity_ids) else rows.features.iloc[served].reset_index(drop=True)
    missing = np.isnan(features.to_numpy()).sum(axis=0)
    for column in np.flatnonzero(missing):
        MISSING_FEATURES.labels(feature=str(features.columns[column])).inc(int(missing[column]))
    predictions = model.predict(features)
    for value in predictions.ravel().tolist():
        PREDICTION_VALUES.observe(value)
    calibration = model.calibration
    bands: list[tuple[float, np.ndarray, np.ndarray]] = []
    if calibration is not None:
        served_entities = [entity_ids[i] for i in served]
        computed = calibration.bands(predictions, served_entities, features)
        bands = [(level, lo, hi) for level, (lo, hi) in computed.items()]
    levels = [level for level, _, _ in bands]
    note = None if bands else f"version {model.version} was registered without interval calibration"

    position = {row: n for n, row in enumerate(served)}
    step = runtime.step()
    start = 0
    for answer, request in zip(answers, requests, strict=True):
        span = range(start, start + len(request))
        start += len(request)
        if isinstance(answer, Exception):
            continue
        for i in span:
            event_time = rows.event_times[i]
            assert event_time is not None
            age = (now - event_time).total_seconds()
            row = position[i]
            per_step: list[list[Band]] = [[] for _ in range(predictions.shape[1])]
            for level, lower, upper in bands:  # narrowest level first
                for h, (lo, hi) in enumerate(zip(lower[row].tolist(), upper[row].tolist(), strict=True)):
                    per_step[h].append(Band(level=level, lower=lo, upper=hi))
            answer.append(
                Forecast(
                    entity_id=entity_ids[i],
                    model_name=model.name,
                    model_version=model.version,
                    feature_event_time=event_time,
                    feature_age_seconds=age,
                    stale=age > ttl_seconds,
                    interval_levels=levels,
                    note=note,
                    forecast=[
                        ForecastPoint(timestamp=event_time + (h + 1) * step, value=value, intervals=per_step[h])
                        for h, value in enumerate(predictions[row].tolist())
                    ],
                )
            )
    if runtime.ledger is not None:
        runtime.ledger.record([f for answer in answers if not isinstance(answer, Exception) for f in answer])
    return answers
