import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from model_bundle.preprocessing import Preprocessor
from model_training.backtest import make_folds
from model_training.forecasters import baseline, create
from model_training.metrics import mae, rmse, smape


def test_folds_leave_a_gap_of_at_least_the_horizon(dataset: DatasetConfig) -> None:
    stamps = pd.Series(pd.date_range("2024-01-01", periods=24 * 30, freq="h", tz="UTC"))
    folds = make_folds(stamps, dataset)
    assert len(folds) == dataset.training.backtest.folds
    hour = pd.Timedelta(hours=1)
    for fold in folds:
        # the newest training row's labels end at train_end + H, before any test row
        assert fold.train_end + dataset.horizon * hour <= fold.cutoff
        assert fold.test_end - fold.cutoff == dataset.training.backtest.test_size * hour
    assert folds[-1].test_end == stamps.max()
    assert [f.cutoff for f in folds] == sorted(f.cutoff for f in folds)


def test_too_little_history_is_a_clear_error(dataset: DatasetConfig) -> None:
    stamps = pd.Series(pd.date_range("2024-01-01", periods=40, freq="h", tz="UTC"))
    with pytest.raises(ValueError, match="not enough history"):
        make_folds(stamps, dataset)


def test_seasonal_naive_repeats_the_last_season(dataset: DatasetConfig) -> None:
    naive = baseline(dataset.with_horizon(30))  # hourly, a season of 24
    lags = naive.columns
    assert lags[0] == "temp_lag_23"  # t+1 -> one day earlier = t-23
    assert lags[23] == "temp_lag_0"  # t+24 -> t
    assert lags[24] == "temp_lag_23"  # t+25 -> t+1 -> t-23
    row = pd.DataFrame({f"temp_lag_{k}": [float(k)] for k in range(24)})
    np.testing.assert_array_equal(naive.predict(row)[0, :3], [23.0, 22.0, 21.0])


def test_metrics_on_known_values() -> None:
    actual = np.array([[1.0, 2.0], [3.0, 4.0]])
    forecast = np.array([[2.0, 2.0], [3.0, 2.0]])
    assert float(mae(actual, forecast)) == pytest.approx(0.75)
    assert float(rmse(actual, forecast)) == pytest.approx(np.sqrt(5 / 4))
    assert float(smape(np.zeros(2), np.zeros(2))) == 0.0
    np.testing.assert_allclose(mae(actual, forecast, axis=0), [0.5, 1.0])


def test_preprocessor_learns_from_training_rows_only() -> None:
    train = pd.DataFrame({"a": [1.0, 2.0, np.nan, 3.0], "b": [np.nan] * 4})
    test = pd.DataFrame({"a": [np.nan, 100.0], "b": [5.0, np.nan]})
    pre = Preprocessor(columns=["a", "b"]).fit(train)
    assert pre.medians == {"a": 2.0, "b": 0.0}
    np.testing.assert_array_equal(pre.transform(test), [[2.0, 5.0], [100.0, 0.0]])
    assert Preprocessor.from_dict(pre.to_dict()) == pre
    with pytest.raises(KeyError, match="b"):
        pre.transform(test[["a"]])


def test_xgboost_beats_naive_on_learnable_data_and_round_trips(dataset: DatasetConfig, tmp_path) -> None:
    from feature_store.features import build_features, feature_names
    from feature_store.training_set import build_labels, label_names
    from tests.utils.data import synthetic_frame

    raw = synthetic_frame()
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP])
    split = int(len(frame) * 0.8)
    train, test = frame.iloc[:split], frame.iloc[split:]
    model = create("xgboost", dataset).fit(train, train[label_names(dataset)].to_numpy())
    predictions = model.predict(test)
    assert predictions.shape == (len(test), dataset.horizon)
    actual = test[label_names(dataset)].to_numpy()
    naive = baseline(dataset).predict(test)
    assert mae(actual, predictions) < mae(actual, naive)

    model.save(tmp_path / "m")
    from model_training.forecasters import load

    restored = load("xgboost", tmp_path / "m")
    np.testing.assert_allclose(restored.predict(test[feature_names(dataset)]), predictions, rtol=1e-6)


def test_the_preprocessor_fills_exactly_like_pandas_fillna() -> None:
    import numpy as np
    import pandas as pd

    from model_bundle.preprocessing import Preprocessor

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 6)), columns=list("abcdef"))
    frame = frame.mask(rng.random(frame.shape) < 0.2)
    frame["f"] = np.nan  # a column never seen: median 0
    prep = Preprocessor(columns=["c", "a", "f", "b"]).fit(frame)
    fresh = frame.sample(50, random_state=1).mask(rng.random((50, 6)) < 0.3)
    expected = fresh[prep.columns].astype("float64").fillna(prep.medians).to_numpy()
    np.testing.assert_array_equal(prep.transform(fresh), expected)
    assert not np.isnan(prep.transform(fresh)).any()
