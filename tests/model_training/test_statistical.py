"""The statistical families: one statsforecast model per series, forecasting from each series' newest
values without refitting, saved as JSON, and a series no model fits left to the last value."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, history_name, label_names
from core.dataset import DatasetConfig
from core.history import target_series, with_history
from model_bundle.families import statistical
from model_training import devices, forecasters
from model_training.backtest import backtest
from tests.utils.data import split_in_time, training_frame, write_dataset

PER_SERIES = sorted(forecasters.PER_SERIES)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("statistical")))
    frame = training_frame(dataset)
    train, test = split_in_time(frame)
    # The test rows' forecasts start a horizon after the newest training label.
    test = test[test[EVENT_TIMESTAMP] > train[EVENT_TIMESTAMP].max() + dataset.horizon * dataset.frequency.fixed]
    return dataset, frame, train, test


def fitted(family: str, dataset: DatasetConfig, train: pd.DataFrame) -> forecasters.Forecaster:
    model = forecasters.create(family, dataset, device=devices.CPU)
    return model.fit(train, train[label_names(dataset)].to_numpy())


def test_the_bundles_code_names_the_platforms_time_column() -> None:
    assert statistical.TIME_COLUMN == EVENT_TIMESTAMP
    assert sorted(statistical.MODELS) == PER_SERIES


@pytest.mark.slow
@pytest.mark.parametrize("family", PER_SERIES)
def test_a_per_series_family_saves_as_json_and_forecasts_the_same_loaded(family: str, frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, frame, train, test = frames
    model = fitted(family, dataset, train)
    assert sorted(model.models) == ["site_0", "site_1"]
    assert model.skipped == {}
    rows = with_history(test, frame, dataset)
    predicted = model.predict(rows)
    assert predicted.shape == (len(test), dataset.horizon)
    assert np.isfinite(predicted).all()
    model.save(tmp_path / "bundle")
    assert [p.name for p in (tmp_path / "bundle").iterdir()] == ["statistical.json"], "data, no pickles"
    restored = forecasters.load(family, tmp_path / "bundle")
    np.testing.assert_array_equal(restored.predict(rows), predicted)
    with pytest.raises(KeyError, match=history_name(dataset)):
        restored.predict(test)  # feature rows alone: a per-series model needs the history


def seasonal_rows(dataset: DatasetConfig, hours: int = 1200, seed: int = 3) -> pd.DataFrame:
    """Rows of one series with a steady daily cycle and a slowly wandering level (what ETS fits with
    a season and little smoothing, so that its state carries far back): lag 0 and labels only."""
    rng = np.random.default_rng(seed)
    t = np.arange(hours + dataset.horizon)
    values = 50 + 0.01 * rng.normal(0, 1, len(t)).cumsum() + 4 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.3, len(t))
    return series_rows(dataset, values, hours)


def series_rows(dataset: DatasetConfig, values: np.ndarray, hours: int) -> pd.DataFrame:
    """Hourly rows of series ``site_1`` from ``values`` (``hours`` of them and a horizon more for the
    labels): lag 0 and labels only."""
    frame = pd.DataFrame(
        {
            dataset.entity_column: "site_1",
            EVENT_TIMESTAMP: pd.date_range("2024-01-01", periods=hours, freq="h", tz="UTC"),
            f"{dataset.target}_lag_0": values[:hours],
        }
    )
    for step, label in enumerate(label_names(dataset), start=1):
        frame[label] = values[step : hours + step]
    return frame


@pytest.mark.parametrize("family", ["auto_ets", "auto_arima"])
def test_a_forecast_continues_from_the_end_of_training_as_if_filtered_over_the_whole_series(
    family: str, frames
) -> None:  # type: ignore[no-untyped-def]
    """A row two days after training ended: the bundle's forecast equals statsforecast's model of
    the same training series run over every value up to the row (``forward`` on the whole series)."""
    from statsforecast import models

    dataset = frames[0]
    frame = seasonal_rows(dataset)
    train = frame.iloc[:1000]
    model = fitted(family, dataset, train)
    if family == "auto_ets":
        assert model.models["site_1"].fitted["components"][2] == "A", "a seasonal model"  # type: ignore[attr-defined]
    row = frame.iloc[[1000 + dataset.horizon + 48]]
    ours = model.predict(with_history(row, frame, dataset))[0]
    series = target_series(frame, dataset)["site_1"]
    own = model.models["site_1"]  # type: ignore[attr-defined]
    options = {"season_length": own.season_length, **({"approximation": True} if family == "auto_arima" else {})}
    reference = getattr(models, statistical.MODELS[family])(**options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(series.until(own.end))
    expected = reference.forward(y=series.until(row[EVENT_TIMESTAMP].iloc[0]), h=dataset.horizon)["mean"]
    # ETS continues from its state exactly; ARIMA filters the training tail, whose conditional start
    # differs from the whole series' by a little.
    np.testing.assert_allclose(ours, expected, rtol=1e-7 if family == "auto_ets" else 1e-3)


def test_a_series_no_model_can_fit_forecasts_its_last_value_and_says_why(frames, caplog) -> None:  # type: ignore[no-untyped-def]
    dataset, _frame, train, _test = frames
    flat = train[train[dataset.entity_column] == "site_0"].assign(**{dataset.entity_column: "flat"})
    flat[[c for c in flat.columns if c.startswith(("temp_lag_0", "y_"))]] = 4.0
    short = train[train[dataset.entity_column] == "site_1"].tail(2).assign(**{dataset.entity_column: "short"})
    model = fitted("auto_theta", dataset, pd.concat([train, flat, short]))
    assert sorted(model.models) == ["site_0", "site_1"]  # type: ignore[attr-defined]
    assert model.skipped == {"flat": "a constant series", "short": "8 values, fewer than 10"}  # type: ignore[attr-defined]
    assert "left out flat: a constant series" in caplog.text
    assert model.params["series_left_out"] == 2
    newest = pd.concat([flat.tail(1), short.tail(1)])
    windows = with_history(newest, pd.concat([flat, short]), dataset)
    np.testing.assert_array_equal(model.predict(windows), [[4.0] * 6, [short["temp_lag_0"].iloc[-1]] * 6])


@pytest.mark.slow
def test_the_backtest_scores_a_per_series_family_on_each_rows_own_history(frames) -> None:  # type: ignore[no-untyped-def]
    dataset, frame, _, _ = frames
    result = backtest(frame, dataset, lambda: forecasters.create("auto_theta", dataset, device=devices.CPU))
    errors, entities = result.errors()
    assert errors.shape == (len(entities), dataset.horizon)
    assert np.isfinite(errors).all()
    assert result.summary()["backtest_mae"] < result.summary()["baseline_mae"], result.summary()


def test_mstl_takes_out_the_daily_and_the_weekly_season(frames) -> None:  # type: ignore[no-untyped-def]
    """Hourly values with a daily and a weekly cycle: MSTL (24 and 168, the dataset's seasons) forecasts
    the next day better than AutoETS with the daily season alone, from the same window."""
    dataset = frames[0]
    rng = np.random.default_rng(11)
    hours = 6 * 168
    t = np.arange(hours + dataset.horizon)
    values = 50 + 6 * np.sin(2 * np.pi * t / 24) + 10 * (t % 168 >= 120) + rng.normal(0, 0.3, len(t))
    frame = series_rows(dataset, values, hours)
    assert dataset.seasonalities == [24, 168]
    train, rows = frame.iloc[: hours - 168], frame.iloc[hours - 168 : hours - dataset.horizon]
    rows = with_history(rows, frame, dataset)
    errors = {}
    for family in ("mstl", "auto_ets"):
        model = fitted(family, dataset, train)
        assert model.skipped == {}
        errors[family] = float(np.abs(model.predict(rows) - rows[label_names(dataset)].to_numpy()).mean())
    assert errors["mstl"] < 0.5 * errors["auto_ets"], errors
    assert model.models["site_1"].fitted.get("seasons") is None  # auto_ets keeps its own fit
    mstl = fitted("mstl", dataset, train)
    assert mstl.models["site_1"].fitted["seasons"] == [24, 168]
    short = fitted("mstl", dataset, train.iloc[-300:])
    assert short.models["site_1"].fitted["seasons"] == [24], "fewer than two weeks: the daily season alone"
    # From the end of training, without decomposing again, the forecast is statsforecast's MSTL's own.
    from statsforecast.models import MSTL, AutoETS

    from model_training.families.statistical import series_step

    grid = target_series(train, dataset)["site_1"]
    reference = MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN")).fit(grid.values)
    own = mstl.models["site_1"]
    at_end = own.forecast(
        grid.values[-dataset.history_length :], grid.end, series_step(dataset.frequency), dataset.horizon
    )
    np.testing.assert_allclose(at_end, reference.predict(dataset.horizon)["mean"], rtol=1e-9)
