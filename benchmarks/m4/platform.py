"""The platform's own families on M4: the same trainer and predictor a retraining run and a bundle use.

Each M4 series becomes the rows a training set holds (the series' id as its entity, one row per
value with the value as lag 0, on an hourly or weekly grid: M4 has no timestamps), the family's
trainer fits them, and the forecast is the bundle's predictor on each series' newest row with its
history (:mod:`core.history`). No interval yet: the platform's bands are calibrated on the
backtest's errors, which this first comparison does not run.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
import pandas as pd

from benchmarks.m4.data import Frequency, M4Series
from benchmarks.m4.peers import Forecasts

FAMILIES = ("auto_ets", "auto_theta", "auto_arima")
ROWS = tuple(f"platform_{family}" for family in FAMILIES)
STEPS = {"Hourly": timedelta(hours=1), "Weekly": timedelta(days=7)}
START = pd.Timestamp("2000-01-03", tz="UTC")  # a Monday: the weekly grid's days are Mondays


def dataset_config(spec: Frequency):  # type: ignore[no-untyped-def]
    """The dataset config a user would write for one M4 frequency (series as entities, no covariates)."""
    from core.dataset import DatasetConfig

    step = STEPS[spec.name]
    return DatasetConfig.model_validate(
        {
            "name": f"m4_{spec.name.lower()}",
            "entity_column": "series",
            "timestamp_column": "time",
            "frequency": step,
            "target": "value",
            "features": [],
            "horizon": spec.horizon,
            "seasonal_period": spec.seasonal_period,
            "source": {"layout": "long", "format": "csv", "uri": "m4.csv"},
            "quality": {"max_gap": step, "max_age": step * 2},
        }
    )


def training_rows(series: M4Series, spec: Frequency) -> pd.DataFrame:
    """One row per training value: the entity, its time on the grid and the value as lag 0."""
    from core.columns import EVENT_TIMESTAMP, lag_name

    step = STEPS[spec.name]
    parts = [
        pd.DataFrame(
            {
                "series": name,
                EVENT_TIMESTAMP: pd.date_range(START, periods=len(values), freq=step),
                lag_name("value", 0): values,
            }
        )
        for name, values in zip(series.ids, series.train, strict=True)
    ]
    return pd.concat(parts, ignore_index=True)


def platform_run(family: str, series: M4Series, spec: Frequency, jobs: int = -1) -> Forecasts:
    """Fit ``family`` per series with the platform's trainer, forecast from each series' newest row."""
    from core.history import with_history
    from model_training import devices, forecasters

    dataset = dataset_config(spec)
    rows = training_rows(series, spec)
    model = forecasters.create(family, dataset, device=devices.CPU)
    started = time.perf_counter()
    model.fit(rows, np.empty((len(rows), 0)))
    fitted = time.perf_counter()
    newest = rows.groupby("series", sort=False).tail(1)
    point = model.predict(with_history(newest, rows, dataset))
    predicted = time.perf_counter()
    order = pd.Index(newest["series"]).get_indexer(series.ids)
    assert (order >= 0).all(), "a series without its forecast"
    return Forecasts(f"platform_{family}", point[order], None, fitted - started, predicted - fitted)
