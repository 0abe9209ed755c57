"""An answer's body and metrics as the service writes them without a pydantic object per step: the
same bytes as the ``Forecast`` schema's model, the same exposition as a histogram observed value by
value; and what the service loaded, kept out of the garbage collector's full collections."""

from __future__ import annotations

import gc
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from core.dataset import DatasetConfig
from core.settings import Settings
from model_serving.app import create_app
from model_serving.metrics import observe_all
from model_serving.schemas import Answer, BatchForecast, Forecast, json_body

START = datetime(2024, 3, 1, 6, tzinfo=UTC)


def _answer(levels: list[float], values: list[float], answered_by: list[str] | None = None) -> Answer:
    steps = len(values)
    return Answer(
        entity_id="store_7/item 3",
        model_name="daily_forecaster",
        model_version="12",
        feature_event_time=START,
        feature_age_seconds=3600.25,
        stale=False,
        interval_levels=levels,
        note=None if levels else "version 12 was registered without interval calibration",
        model_family="ensemble",
        answered_by=answered_by,
        targets=[START + timedelta(hours=h + 1) for h in range(steps)],
        values=values,
        bands=[([v - 10 * level for v in values], [v + 10 * level for v in values]) for level in levels],
    )


@pytest.mark.parametrize(
    ("levels", "values", "answered_by"),
    [
        ([0.8, 0.95], [1.5, -2.0, 1e-300, 123456789.125], ["auto_ets", "naive"]),
        ([], [0.1, 0.2, 0.30000000000000004], None),
        ([0.5], [math.nan, math.inf, 3.0], ["naive"]),  # a broken model's values: null, as pydantic writes them
    ],
)
def test_an_answers_body_is_the_forecast_schemas_json(
    levels: list[float], values: list[float], answered_by: list[str] | None
) -> None:
    answer = _answer(levels, values, answered_by)
    model = answer.model()
    assert json_body(answer.document()) == model.model_dump_json().encode()
    assert [point.value for point in model.forecast][-1] == values[-1]
    assert [[band.level for band in point.intervals] for point in model.forecast] == [levels] * len(values)
    if levels:  # each step's bands are that step's, level by level
        assert model.forecast[1].intervals[-1].upper == values[1] + 10 * levels[-1]
    batch = {"forecasts": [answer.document(), _answer([0.9], [4.0]).document()]}
    assert json_body(batch) == BatchForecast.model_validate(batch).model_dump_json().encode()
    if all(map(math.isfinite, values)):  # a client reads back what was answered
        assert Forecast.model_validate_json(json_body(answer.document())) == model


def test_an_answer_whose_bands_miss_a_step_is_not_written() -> None:
    """Bands shorter than the forecast fail the body, never shorten it."""
    answer = _answer([0.8], [1.0, 2.0])
    broken = Answer(**{**{f: getattr(answer, f) for f in Answer.__dataclass_fields__}, "bands": [([1.0], [2.0])]})
    with pytest.raises(IndexError):
        broken.document()


def _exposition(values: np.ndarray, one_by_one: bool) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("values", "test", buckets=(-5, 0, 0.5, 10, 100), registry=registry)
    if one_by_one:
        for value in values.ravel().tolist():
            histogram.observe(value)
    else:
        observe_all(histogram, values)
    return generate_latest(registry)


def _buckets_and_sum(text: bytes) -> tuple[dict[str, float], float]:
    buckets, total = {}, math.nan
    for line in text.decode().splitlines():
        if line.startswith("values_bucket"):
            name, value = line.rsplit(" ", 1)
            buckets[name] = float(value)
        elif line.startswith("values_sum"):
            total = float(line.rsplit(" ", 1)[1])
    return buckets, total


@pytest.mark.parametrize(
    "values",
    [
        np.array([[-7.0, -5.0, -4.9, 0.0, 0.25], [0.5, 0.51, 10.0, 99.9, 100.0]]),  # on and around each bound
        np.array([101.0, 1e9, math.inf, -math.inf]),  # past the last bound: +Inf's bucket alone
        np.array([1.0, math.nan, 2.0]),  # a NaN: in the sum, in no bucket
        np.random.default_rng(3).normal(5, 40, size=(100, 14)),
        np.array([]),
    ],
)
def test_observing_all_values_at_once_counts_as_observing_each(values: np.ndarray) -> None:
    one_by_one, at_once = (_buckets_and_sum(_exposition(values, flag)) for flag in (True, False))
    assert at_once[0] == one_by_one[0]
    assert at_once[0]['values_bucket{le="+Inf"}'] == np.count_nonzero(~np.isnan(values))
    assert at_once[1] == pytest.approx(one_by_one[1], rel=1e-12, nan_ok=True)


def test_a_labelled_histogram_is_observed_through_its_children_only() -> None:
    histogram = Histogram("labelled", "test", ["route"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="missing label values"):
        observe_all(histogram, np.array([1.0]))


@pytest.mark.slow
def test_what_the_service_loaded_is_frozen_for_its_life(trained: tuple[Settings, DatasetConfig]) -> None:
    """Once ready, the objects the load made sit in the collector's permanent generation (a full
    collection no longer walks the model); when the app ends they are handed back."""
    gc.unfreeze()  # from a clean slate, whatever an earlier test of this process froze
    with TestClient(create_app(trained[0].model_copy(update={"model_poll_seconds": 0}))) as client:
        assert client.get("/health/ready").status_code == 200
        assert gc.get_freeze_count() > 0
        assert client.post("/v1/forecast/batch", json={"entity_ids": ["site_0", "site_1"]}).status_code == 200
    assert gc.get_freeze_count() == 0
