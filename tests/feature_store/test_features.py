import numpy as np
import pandas as pd
import pytest

from core.dataset import DatasetConfig
from feature_store.features import EVENT_TIMESTAMP, build_features, feature_names
from feature_store.training_set import build_labels, label_names


def _validated(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    return out


def test_no_value_from_after_a_row_reaches_that_row(dataset: DatasetConfig) -> None:
    from tests.utils.data import synthetic_frame

    raw = _validated(synthetic_frame())
    cutoff = raw["ts"].sort_values().iloc[len(raw) // 2]
    future = raw["ts"] > cutoff
    tampered = raw.copy()
    tampered.loc[future, ["temp", "load", "aux"]] *= 1000.0

    clean = build_features(raw, dataset)
    dirty = build_features(tampered, dataset)
    past = clean[EVENT_TIMESTAMP] <= cutoff
    assert past.sum() > 100
    pd.testing.assert_frame_equal(clean[past], dirty[past])
    # ...and the tampering does show up right after the cutoff, so the check has teeth.
    assert not clean[~past].equals(dirty[~past])


def test_lags_follow_the_clock_not_row_positions(dataset: DatasetConfig) -> None:
    from tests.utils.data import synthetic_frame

    raw = _validated(synthetic_frame(entities=1))
    gap_at = raw["ts"].iloc[100]
    raw = raw[raw["ts"] != gap_at].reset_index(drop=True)  # one missing hour
    features = build_features(raw, dataset).set_index(EVENT_TIMESTAMP)
    after = features.loc[gap_at + pd.Timedelta(hours=1)]
    assert np.isnan(after["temp_lag_1"])  # the hour before is missing: no silent shift
    assert after["temp_lag_2"] == pytest.approx(raw.set_index("ts").loc[gap_at - pd.Timedelta(hours=1), "temp"])


def test_rolling_and_calendar_values(dataset: DatasetConfig) -> None:
    from tests.utils.data import synthetic_frame

    raw = _validated(synthetic_frame(entities=1))
    features = build_features(raw, dataset).set_index(EVENT_TIMESTAMP)
    series = raw.set_index("ts")["temp"]
    t = series.index[200]
    assert features.loc[t, "temp_mean_24"] == pytest.approx(series.loc[:t].tail(24).mean())
    assert features.loc[t, "temp_std_24"] == pytest.approx(series.loc[:t].tail(24).std())
    assert features.loc[t, "hour"] == t.hour
    assert features.loc[t, "day_of_week"] == t.dayofweek
    assert list(features.columns) == ["site", *feature_names(dataset)]


def test_labels_are_the_next_h_targets(dataset: DatasetConfig) -> None:
    from tests.utils.data import synthetic_frame

    raw = _validated(synthetic_frame(entities=1))
    labels = build_labels(raw, dataset).set_index(EVENT_TIMESTAMP)
    series = raw.set_index("ts")["temp"]
    t = series.index[10]
    expected = series.iloc[11 : 11 + dataset.horizon].to_numpy()
    np.testing.assert_allclose(labels.loc[t, label_names(dataset)].to_numpy(dtype=float), expected)
    # the last H rows have no complete label window and are dropped
    assert labels.index.max() == series.index[-1 - dataset.horizon]


def _one_series_at_a_time(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """The features as a frame per series gives them: its rows reindexed onto its own frequency grid,
    pandas' shift and rolling on that grid, the observed times kept."""
    from core.columns import lag_name, rolling_names
    from feature_store.features import _CALENDAR

    parts = []
    for entity, frame in validated.groupby(dataset.entity_column, sort=True):
        observed = frame.set_index(dataset.timestamp_column).sort_index()
        grid = observed.reindex(dataset.frequency.range(observed.index.min(), observed.index.max()))
        out = pd.DataFrame(index=grid.index)
        for lag in dataset.target_lags:
            out[lag_name(dataset.target, lag)] = grid[dataset.target].shift(lag)
        for column in dataset.features:
            for lag in dataset.feature_engineering.covariate_lags:
                out[lag_name(column, lag)] = grid[column].shift(lag)
        for window in dataset.feature_engineering.rolling_windows:
            rolling = grid[dataset.target].rolling(window, min_periods=window)
            mean, std = rolling_names(dataset.target, window)
            out[mean], out[std] = rolling.mean(), rolling.std()
        for name in dataset.feature_engineering.calendar:
            out[name] = _CALENDAR[name](out.index.to_series()).astype("int64")
        out = out.loc[observed.index].astype({c: "float64" for c in out.columns if c not in _CALENDAR})
        out.insert(0, dataset.entity_column, entity)
        parts.append(out)
    table = pd.concat(parts).rename_axis(EVENT_TIMESTAMP).reset_index()
    return table[[dataset.entity_column, EVENT_TIMESTAMP, *feature_names(dataset)]]


def _labels_one_series_at_a_time(validated: pd.DataFrame, dataset: DatasetConfig) -> pd.DataFrame:
    """The labels as a frame per series gives them: its target reindexed onto its own frequency grid,
    shifted back by each step, the observed times kept, rows missing a label dropped."""
    parts = []
    for entity, frame in validated.groupby(dataset.entity_column, sort=True):
        observed = frame.set_index(dataset.timestamp_column).sort_index()
        grid = observed.reindex(dataset.frequency.range(observed.index.min(), observed.index.max()))
        target = grid[dataset.target]
        labels = pd.DataFrame({f"y_{h}": target.shift(-h) for h in range(1, dataset.horizon + 1)}, index=grid.index)
        labels = labels.loc[observed.index]
        labels.insert(0, dataset.entity_column, entity)
        parts.append(labels)
    table = pd.concat(parts).rename_axis(EVENT_TIMESTAMP).reset_index()
    table[EVENT_TIMESTAMP] = table[EVENT_TIMESTAMP].dt.as_unit("ns")
    table = table[[dataset.entity_column, EVENT_TIMESTAMP, *label_names(dataset)]]
    return table.dropna(subset=label_names(dataset)).reset_index(drop=True)


@pytest.mark.parametrize("frequency", ["PT1H", "P1D", "P1M"])
def test_many_series_in_one_pass_get_each_its_own_features(dataset: DatasetConfig, frequency: str) -> None:
    """Series of different starts and lengths, gaps, missing targets and rows in any order, on a fixed
    and a calendar grid: the one pass over the part gives each series the features and the labels a
    frame of its own gives it, value for value; two rows of one series at one time are refused."""
    from core.frequency import Frequency

    dataset = dataset.model_copy(update={"frequency": Frequency.parse(frequency)})
    rng = np.random.default_rng(3)
    frames = []
    for series in range(7):
        start = dataset.frequency.shift(pd.Timestamp("2023-01-01", tz="UTC"), int(rng.integers(0, 40)))
        stamps = dataset.frequency.shift_each(pd.DatetimeIndex([start] * 120), np.arange(120))
        frame = pd.DataFrame({"site": f"s{series}", "ts": stamps, "temp": rng.normal(20, 3, 120),
                              "load": rng.normal(10, 1, 120), "aux": rng.integers(0, 5, 120)})  # fmt: skip
        # Rare missing targets and gaps: most windows are whole, and one that reached into the series
        # before would have a value where the series' own has none.
        frame.loc[rng.random(120) < 0.02, "temp"] = np.nan
        frames.append(frame[rng.random(120) > 0.03])
    validated = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=4)
    validated["ts"] = validated["ts"].dt.as_unit("s")  # times in another unit than nanoseconds, as a file may give

    built = build_features(validated, dataset)
    pd.testing.assert_frame_equal(built, _one_series_at_a_time(validated, dataset), check_exact=True)
    assert len(built) == len(validated)
    labels = build_labels(validated, dataset)
    pd.testing.assert_frame_equal(labels, _labels_one_series_at_a_time(validated, dataset), check_exact=True)
    assert 0 < len(labels) < len(validated)  # rows whose next steps miss a value are left out

    twice = pd.concat([validated, validated.iloc[:1]], ignore_index=True)
    with pytest.raises(ValueError, match="two rows at one time"):
        build_features(twice, dataset)
    with pytest.raises(ValueError, match="two rows at one time"):
        build_labels(twice, dataset)
