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
