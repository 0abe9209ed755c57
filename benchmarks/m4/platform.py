"""The platform's own families on M4: the same trainer and predictor a retraining run and a bundle use.

Each M4 series becomes the rows a training set holds (the series' id as its entity, one row per
value with the value as lag 0, on an hourly or weekly grid: M4 has no timestamps), the family's
trainer fits them, and the forecast is the bundle's predictor on each series' newest row with its
history (:mod:`core.history`). These single-family rows have no interval: the platform's bands are
calibrated on a backtest's errors, which only the selection runs.

``platform_selection`` is the ``selection`` family as a retraining runs it: the series' rows get the
platform's features and labels (:mod:`feature_store`), every candidate is backtested on the same
rolling-origin folds of the newest values, each series gets its two best candidates on MASE, each
weighted by the inverse of its squared MASE (``combine: weighted``), and the
forecast is the bundle's predictor on each series' newest row, with the 95 % band a bundle carries:
conformal widths from the backtest's errors of each series' choice, in units of each series' recent
movement (:mod:`model_bundle.intervals`), as a retraining's training calibrates them. The series end
together (M4 gives no dates; its test values follow every series' last training value), so the folds
are each series' newest values.
"""

from __future__ import annotations

import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.m4.data import Frequency, M4Series
from benchmarks.m4.peers import Forecasts

FAMILIES = ("auto_ets", "auto_theta", "auto_arima", "mstl", "selection")
ROWS = tuple(f"platform_{family}" for family in FAMILIES)
STEPS = {"Hourly": timedelta(hours=1), "Weekly": timedelta(days=7)}
END = pd.Timestamp("2024-01-01", tz="UTC")  # a Monday: the weekly grid's days are Mondays
# The selection's candidates and its backtest: one fold of one horizon of origins (its rows), each
# scored on the next H values; each series the weighted combination of its two best on that backtest.
# Hourly leaves AutoARIMA out for its cost (its fit alone takes about 8 minutes of the 45 the run may
# take, and the selection fits twice) and has MSTL for its two seasons; Weekly (m = 1) has no season
# for MSTL or seasonal naive and takes AutoARIMA (under two minutes) and the random walk with drift.
CANDIDATES = {
    "Hourly": ["naive", "seasonal_naive", "auto_ets", "auto_theta", "mstl"],
    "Weekly": ["naive", "random_walk_with_drift", "auto_ets", "auto_theta", "auto_arima"],
}
FOLDS = 1
COMBINATION = {"method": "combination", "top_k": 2, "combine": "weighted"}
LEVEL = 0.95  # the interval M4 scored


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
            "intervals": {"levels": [LEVEL]},
            "feature_engineering": {"covariate_lags": [], "rolling_windows": []},
            "training": {
                "backtest": {"folds": FOLDS, "test_size": spec.horizon, "gap": spec.horizon},
                "selection": {"candidates": CANDIDATES[spec.name], "min_errors": FOLDS * spec.horizon, **COMBINATION},
            },
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
                EVENT_TIMESTAMP: pd.date_range(end=END, periods=len(values), freq=step),
                lag_name("value", 0): values,
            }
        )
        for name, values in zip(series.ids, series.train, strict=True)
    ]
    return pd.concat(parts, ignore_index=True)


def labelled_rows(series: M4Series, spec: Frequency) -> pd.DataFrame:
    """The rows a training set holds: each series' features (the platform's, from its values) and
    labels where its next H values are known, and its newest row (labels unknown) last."""
    from core.columns import EVENT_TIMESTAMP
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    dataset = dataset_config(spec)
    raw = training_rows(series, spec).rename(columns={EVENT_TIMESTAMP: "time", "value_lag_0": "value"})
    features = build_features(raw, dataset)
    labelled = features.merge(build_labels(raw, dataset), on=["series", EVENT_TIMESTAMP], how="left")
    return labelled.sort_values(EVENT_TIMESTAMP, kind="stable").reset_index(drop=True)


def platform_run(family: str, series: M4Series, spec: Frequency, jobs: int = -1) -> Forecasts:
    """Fit ``family`` per series with the platform's trainer, forecast from each series' newest row."""
    from core.columns import label_names
    from core.history import with_history
    from model_training import devices, forecasters
    from model_training.train import fit_and_report

    dataset = dataset_config(spec)
    if family == "selection":  # backtests: the platform's features and labels
        everything = labelled_rows(series, spec)
        known = everything[label_names(dataset)].notna().all(axis=1)
        rows, newest = everything[known], everything.groupby("series", sort=False).tail(1)
    else:
        rows = training_rows(series, spec)
        newest = rows.groupby("series", sort=False).tail(1)
    started = time.perf_counter()
    bands = None
    if family == "selection":  # as a retraining trains it: backtests, the choice, the bands' calibration
        with tempfile.TemporaryDirectory(prefix="m4-reports-") as reports:
            trained = fit_and_report(dataset, END.date(), rows, family, None, devices.CPU, Path(reports))
        model, bands = trained.model, trained.bands
    else:
        model = forecasters.create(family, dataset, device=devices.CPU)
        labels = label_names(dataset)
        targets = rows[labels].to_numpy(dtype=np.float64) if set(labels) <= set(rows) else np.empty((len(rows), 0))
        model.fit(rows, targets)
    fitted = time.perf_counter()
    features = with_history(newest, rows, dataset)
    point = model.predict(features)
    interval = None
    if bands is not None:
        lower, upper = bands.bands(point, list(newest["series"].astype(str)), features)[LEVEL]
        interval = (lower, upper)
    predicted = time.perf_counter()
    order = pd.Index(newest["series"]).get_indexer(series.ids)
    assert (order >= 0).all(), "a series without its forecast"
    ordered = None if interval is None else (interval[0][order], interval[1][order])
    return Forecasts(f"platform_{family}", point[order], ordered, fitted - started, predicted - fitted)
