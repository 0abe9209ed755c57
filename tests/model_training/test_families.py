"""Every model family behind the one interface: fit, predict, save and load as data, determinism."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP, feature_names, label_names, lag_name
from core.dataset import DatasetConfig
from model_bundle.families.dlinear import moving_average
from model_training import devices, forecasters
from model_training.families.linear import contiguous_lags
from model_training.metrics import mae
from orchestration.retrain_form import FAMILIES as DAG_FAMILIES
from tests.utils.data import split_in_time, training_frame, write_dataset

FAST = {
    "xgboost": {"n_estimators": 30, "max_depth": 3, "learning_rate": 0.2},
    "lightgbm": {"n_estimators": 30, "learning_rate": 0.2, "num_leaves": 7},
    "nlinear": {"epochs": 6, "batch_size": 64, "learning_rate": 0.01},
    "dlinear": {"epochs": 6, "batch_size": 64, "learning_rate": 0.01, "kernel_size": 5},
}


LINEAR_RIDGE = {"nlinear": {"solver": "ridge"}, "dlinear": {"solver": "ridge", "kernel_size": 5}}


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetConfig, pd.DataFrame, pd.DataFrame]:
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path_factory.mktemp("families")))
    return dataset, *split_in_time(training_frame(dataset))


def test_every_registered_family_loads_and_names_itself() -> None:
    for name in forecasters.FAMILIES:
        assert forecasters.family_class(name).family == name
    # the retraining form offers exactly the trainable families
    assert sorted(DAG_FAMILIES) == forecasters.TRAINABLE
    with pytest.raises(ValueError, match="unknown model family 'prophet'"):
        forecasters.family_class("prophet")


@pytest.mark.slow
@pytest.mark.parametrize("family", forecasters.TABULAR)
def test_family_beats_naive_and_round_trips(family: str, frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, train, test = frames
    labels = label_names(dataset)
    model = forecasters.create(family, dataset, FAST[family], device=devices.CPU)
    model.fit(train, train[labels].to_numpy())
    predictions = model.predict(test)
    assert predictions.shape == (len(test), dataset.horizon)
    actual = test[labels].to_numpy()
    assert mae(actual, predictions) < mae(actual, forecasters.baseline(dataset).predict(test))

    model.save(tmp_path / "bundle")
    assert not list((tmp_path / "bundle").glob("*.pkl")), "fitted state travels as data, not pickles"
    restored = forecasters.load(family, tmp_path / "bundle")
    np.testing.assert_allclose(restored.predict(test[feature_names(dataset)]), predictions, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("family", forecasters.TABULAR)
def test_training_twice_gives_the_same_model(family: str, frames) -> None:  # type: ignore[no-untyped-def]
    dataset, train, test = frames
    labels = label_names(dataset)
    first, second = (
        forecasters.create(family, dataset, FAST[family], device=devices.CPU).fit(train, train[labels].to_numpy())
        for _ in range(2)
    )
    np.testing.assert_array_equal(first.predict(test), second.predict(test))


@pytest.mark.parametrize("family", ["nlinear", "dlinear"])
def test_numpy_forecast_equals_the_torch_network(family: str, dataset: DatasetConfig) -> None:
    """Serving computes the linear families with numpy; it must be the network trained in torch."""
    import torch

    model = forecasters.create(family, dataset, {"kernel_size": 7} if family == "dlinear" else {}, device=devices.CPU)
    network = model._module().double()  # type: ignore[attr-defined]
    model.weights = {k: v.detach().numpy() for k, v in network.state_dict().items()}  # type: ignore[attr-defined]
    window = np.random.default_rng(0).normal(size=(5, model.lookback)).cumsum(axis=1)  # type: ignore[attr-defined]
    expected = network(torch.as_tensor(window)).detach().numpy()
    np.testing.assert_allclose(model._forward(window), expected, rtol=1e-10)  # type: ignore[attr-defined]


def test_moving_average_pads_with_the_edge_values() -> None:
    window = np.array([[1.0, 2.0, 3.0, 10.0]])
    np.testing.assert_allclose(moving_average(window, 3), [[4 / 3, 2.0, 5.0, 23 / 3]])
    np.testing.assert_allclose(moving_average(window, 1), window)


def test_linear_lookback_needs_consecutive_target_lags(dataset: DatasetConfig) -> None:
    assert contiguous_lags([0, 1, 2, 5]) == 3
    assert contiguous_lags([1, 2]) == 0
    assert forecasters.create("nlinear", dataset, device=devices.CPU).lookback == 24  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=r"needs target lags 0\.\.47"):
        forecasters.create("nlinear", dataset, {"lookback": 48}, device=devices.CPU)


def test_linear_holdout_leaves_a_horizon_gap(dataset: DatasetConfig, frames) -> None:  # type: ignore[no-untyped-def]
    _, train, _ = frames
    model = forecasters.create("nlinear", dataset, device=devices.CPU)
    kept, _, (held, _) = model._split(train, train[label_names(dataset)].to_numpy())  # type: ignore[attr-defined]
    gap = held[EVENT_TIMESTAMP].min() - kept[EVENT_TIMESTAMP].max()
    assert gap > pd.Timedelta(hours=dataset.horizon), "no training label may reach into the held-out rows"
    assert len(kept) + len(held) < len(train)


def test_device_choice() -> None:
    assert devices.select("cpu") == devices.CPU
    assert devices.select("auto").is_cuda == devices.cuda_available()
    with pytest.raises(ValueError, match="unknown training device"):
        devices.select("tpu")
    if not devices.cuda_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            devices.select("cuda")
        assert devices.lightgbm_device_type(devices.CPU) == "cpu"


def test_a_machine_without_nvidias_driver_trains_on_the_cpu_without_importing_pytorch() -> None:
    # A tree family's training process asks where to train; on a machine with no driver the answer
    # must not cost a PyTorch import (a second or more of CPU per process). With the driver, PyTorch
    # is asked, as it decides what it can use.
    script = (
        "import sys; from model_training import devices; "
        "print(devices.select('auto').kind, devices.cuda_driver_loads(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    kind, driver, imported = out[0], out[1] == "True", out[2] == "True"
    assert imported == driver
    assert kind == ("cuda" if devices.cuda_available() else "cpu")


def test_bundles_pin_only_what_their_family_loads_with() -> None:
    from model_registry.bundles import pinned_requirements

    names = {family: {r.split("==")[0] for r in pinned_requirements(family)} for family in forecasters.TRAINABLE}
    assert "xgboost" in names["xgboost"]
    assert "lightgbm" in names["lightgbm"]
    for family in forecasters.PER_SERIES:
        assert "statsforecast" in names[family], family
        assert not names[family] & {"torch", "xgboost", "lightgbm"}
    assert not names["naive"] & {"statsforecast", "torch", "xgboost", "lightgbm"}
    for family in ("nlinear", "dlinear"):
        assert not names[family] & {"torch", "xgboost", "lightgbm"}, "linear bundles forecast with numpy"
    assert all(r.count("==") == 1 for r in pinned_requirements("lightgbm"))


@pytest.mark.parametrize("family", ["nlinear", "dlinear"])
def test_ridge_solver_is_the_exact_least_squares_fit(family: str, frames, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dataset, train, test = frames
    labels = label_names(dataset)
    params = {"solver": "ridge", "ridge_alpha": 1e-9, **({"kernel_size": 5} if family == "dlinear" else {})}
    model = forecasters.create(family, dataset, params, device=devices.CPU).fit(train, train[labels].to_numpy())
    # the same problem through numpy's least squares, on the scaled design the family builds
    windows, mean, scale = model._standardised(train)  # type: ignore[attr-defined]
    design, offset = model._design(windows)  # type: ignore[attr-defined]
    a = np.hstack([design, np.ones((len(design), 1))])
    scaled = (train[labels].to_numpy() - mean) / scale - offset
    solution = np.linalg.lstsq(a, scaled, rcond=None)[0]
    windows, mean, scale = model._standardised(test)  # type: ignore[attr-defined]
    test_design, test_offset = model._design(windows)  # type: ignore[attr-defined]
    expected = (np.hstack([test_design, np.ones((len(test), 1))]) @ solution + test_offset) * scale + mean
    np.testing.assert_allclose(model.predict(test), expected, rtol=1e-5, atol=1e-5)
    actual = test[labels].to_numpy()
    assert mae(actual, model.predict(test)) < mae(actual, forecasters.baseline(dataset).predict(test))
    model.save(tmp_path / "m")
    np.testing.assert_allclose(forecasters.load(family, tmp_path / "m").predict(test), model.predict(test))
    with pytest.raises(ValueError, match="unknown solver"):
        forecasters.create(family, dataset, {"solver": "sgd"}, device=devices.CPU).fit(train, train[labels].to_numpy())


def test_a_diverging_network_is_a_clear_error(frames) -> None:  # type: ignore[no-untyped-def]
    dataset, train, _ = frames
    model = forecasters.create("nlinear", dataset, {"learning_rate": 1e30, "epochs": 2}, device=devices.CPU)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.fit(train, train[label_names(dataset)].to_numpy())


def test_fold_pruner_compares_the_same_folds() -> None:
    """Fold 0 is easy for everyone: a trial bad on fold 1 is pruned there, a good one is not."""
    import optuna

    from model_training.tuning import FoldMedianPruner

    study = optuna.create_study(pruner=FoldMedianPruner(n_startup_trials=2, n_warmup_steps=1))
    for folds in ([1.0, 2.0, 3.0], [1.1, 2.1, 3.1], [0.9, 1.9, 2.9]):
        trial = study.ask()
        for step, value in enumerate(folds):
            trial.report(value, step)
        study.tell(trial, sum(folds) / 3)
    bad = study.ask()
    bad.report(0.5, 0)  # the easiest fold: below everyone, not a reason to keep it
    assert not bad.should_prune(), "fold 0 is warm-up"
    bad.report(3.5, 1)  # mean 2.0 over folds 0-1 against a median of 1.55
    assert bad.should_prune()
    good = study.ask()
    good.report(1.0, 0)
    good.report(1.9, 1)  # mean 1.45
    assert not good.should_prune()


# The pinball loss's gradient is the same size for every error: in FAST's six epochs the learning
# rate must not halve every epoch for a linear network to travel to a tail quantile.
SLOWER_DECAY = {"nlinear": {"lr_decay": 0.9}, "dlinear": {"lr_decay": 0.9}}


@pytest.mark.slow
@pytest.mark.parametrize("family", forecasters.TABULAR)
def test_a_familys_quantile_objective_fits_the_quantiles_of_the_noise(
    family: str,
    frames,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """intervals.method: quantile. The synthetic target is its loads' cycle plus Gaussian noise: the
    0.1 and 0.9 quantile models must leave about 10% of later actuals below and above them, hold
    the point forecast between them once made bands, and come back from disk as data."""
    from model_bundle.quantiles import QuantileBands, load_bands

    dataset, train, test = frames
    labels = label_names(dataset)
    actual = test[labels].to_numpy()
    models = {}
    for quantile in (0.1, 0.9):
        extra = forecasters.quantile_params(family, quantile)
        assert extra is not None
        model = forecasters.create(family, dataset, {**FAST[family], **SLOWER_DECAY.get(family, {}), **extra})
        models[f"{quantile:g}"] = model.fit(train, train[labels].to_numpy())
    below = {key: float((actual < m.predict(test)).mean()) for key, m in models.items()}
    assert 0.02 <= below["0.1"] <= 0.22, below
    assert 0.78 <= below["0.9"] <= 0.98, below

    point = forecasters.create(family, dataset, FAST[family], device=devices.CPU).fit(train, train[labels].to_numpy())
    bands = QuantileBands(levels=(0.8,), family=family, models=models)
    bands.save(tmp_path / "bundle")
    assert not list((tmp_path / "bundle").rglob("*.pkl"))
    restored = load_bands(tmp_path / "bundle")
    assert isinstance(restored, QuantileBands)
    features = test[feature_names(dataset)]
    forecast = point.predict(test)
    lower, upper = restored.bands(forecast, None, features)[0.8]
    np.testing.assert_allclose(lower, np.minimum(models["0.1"].predict(test), forecast), rtol=1e-6, atol=1e-9)
    assert (lower <= forecast).all()
    assert (forecast <= upper).all()
    coverage = float(((lower <= actual) & (actual <= upper)).mean())
    assert 0.65 <= coverage <= 0.95, coverage


def test_seasonal_naive_has_no_quantile_objective_and_ridge_refuses_one(frames) -> None:  # type: ignore[no-untyped-def]
    dataset, train, _ = frames
    assert forecasters.quantile_params("seasonal_naive", 0.9) is None
    model = forecasters.create("nlinear", dataset, {"solver": "ridge", "quantile": 0.9}, device=devices.CPU)
    with pytest.raises(ValueError, match="fitted with solver adam"):
        model.fit(train, train[label_names(dataset)].to_numpy())


@pytest.mark.parametrize("family", ["nlinear", "dlinear", "xgboost", "lightgbm"])
def test_the_global_families_learn_every_series_on_its_own_scale(family: str, tmp_path: Path) -> None:
    """The same daily cycle near 100,000 and near 10 (a ten-thousandth of it), one model for both. On
    the training rows' own units what the model adds (a linear map's bias, a tree leaf's change, fitted
    to the big series' errors) is thousands of times the small series' swings; on each row's own
    scale both series are forecast better than seasonal naive does on each."""
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    rng = np.random.default_rng(3)
    stamps = pd.date_range("2024-01-01", periods=60 * 24, freq="h", tz="UTC")
    t = np.arange(len(stamps))

    def cycle(level: float) -> np.ndarray:
        return level * (1 + 0.01 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.001, len(t)))

    raw = pd.concat(
        [
            pd.DataFrame({"site": "big", "ts": stamps, "temp": cycle(1e5)}),
            pd.DataFrame({"site": "small", "ts": stamps, "temp": cycle(10.0)}),
        ]
    ).assign(load=0.0, aux=0.0)
    written = raw.assign(ts=raw["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path, written))
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP]).dropna()
    train, test = split_in_time(frame.sort_values(EVENT_TIMESTAMP).reset_index(drop=True))
    labels, naive = label_names(dataset), forecasters.baseline(dataset)
    relative = {}  # the model's MAE over seasonal naive's, per scaling and series
    for scaling in ("dataset", "series"):
        params = {**LINEAR_RIDGE.get(family, FAST.get(family, {})), "scaling": scaling}
        model = forecasters.create(family, dataset, params, device=devices.CPU).fit(train, train[labels].to_numpy())
        for site in ("big", "small"):
            rows = test[test["site"] == site]
            actual = rows[labels].to_numpy()
            relative[scaling, site] = mae(actual, model.predict(rows)) / mae(actual, naive.predict(rows))
    assert relative["series", "small"] < 1.0, relative
    assert relative["series", "big"] < 1.0, relative
    assert relative["dataset", "small"] > 10 * relative["series", "small"], relative


@pytest.mark.parametrize("family", ["xgboost", "lightgbm"])
def test_rows_with_two_levels_are_scaled_by_their_level_not_by_their_one_change(family: str, tmp_path: Path) -> None:
    """Daily prices near 10,000 that often stay put, with the default lags of weekly data (the current
    value and the one before): a row's two levels hold one change, and where it is none their spread
    is no scale. On their mean level, rows are learnt alike and the forecast stays near the last price
    (the best forecast of a random walk), where the spread of two equal prices blew the changes up."""
    from feature_store.features import build_features
    from feature_store.training_set import build_labels

    rng = np.random.default_rng(7)
    stamps = pd.date_range("2021-01-01", periods=3 * 365, freq="D", tz="UTC")

    def prices() -> np.ndarray:  # a random walk that stays put on two days in five
        moves = rng.normal(0, 50, len(stamps))
        return 10_000 + np.cumsum(np.where(rng.random(len(stamps)) < 0.4, 0.0, moves))

    raw = pd.concat(pd.DataFrame({"site": f"s{s}", "ts": stamps, "temp": prices()}) for s in range(4))
    raw = raw.assign(load=0.0, aux=0.0)
    written = raw.assign(ts=raw["ts"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    config = DatasetConfig.from_yaml(write_dataset(tmp_path, written)).model_dump()
    config |= {"frequency": "P1D", "seasonal_period": 1, "horizon": 3}
    config["quality"] |= {"max_gap": "P1D", "value_ranges": {}}
    config["feature_engineering"] |= {"target_lags": [0, 1], "covariate_lags": [], "rolling_windows": []}
    dataset = DatasetConfig.model_validate(config)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=["site", EVENT_TIMESTAMP]).dropna()
    train, test = split_in_time(frame.sort_values(EVENT_TIMESTAMP).reset_index(drop=True))
    labels = label_names(dataset)
    model = forecasters.create(family, dataset, FAST[family], device=devices.CPU).fit(train, train[labels].to_numpy())
    actual = test[labels].to_numpy()
    last = np.repeat(test[[lag_name("temp", 0)]].to_numpy(), len(labels), axis=1)
    assert mae(actual, model.predict(test)) < 1.2 * mae(actual, last)
