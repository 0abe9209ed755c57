"""The registered bundle answers intervals through MLflow's PyFunc, with nothing else loaded."""

from __future__ import annotations

import numpy as np
import pytest

from core.columns import feature_names
from core.dataset import DatasetConfig
from core.settings import Settings
from model_bundle.outputs import band_columns, point_columns, step_columns

pytestmark = pytest.mark.integration


def test_the_pyfunc_answers_bands_per_level_and_step_and_each_entitys_own_when_named(
    trained: tuple[Settings, DatasetConfig],
) -> None:
    from feature_store.features import read_feature_table
    from model_registry import tracking
    from model_registry.provenance import trusted_model

    settings, dataset = trained
    tracking.configure(settings)
    with trusted_model(settings, settings.model_name(dataset.name), "1") as model:  # its copy goes with the block
        outputs = model.metadata.get_output_schema().input_names()
        horizon = dataset.horizon
        bands = [*band_columns(horizon, 0.8, "lower"), *band_columns(horizon, 0.8, "upper")]
        bands += [*band_columns(horizon, 0.95, "lower"), *band_columns(horizon, 0.95, "upper")]
        assert outputs == [*step_columns(horizon), *bands]
        inputs = {spec.name: spec.required for spec in model.metadata.get_input_schema().inputs}
        assert inputs.pop(dataset.entity_column) is False  # optional: a caller without it gets the dataset's bands
        assert set(inputs) == set(feature_names(dataset))
        assert all(inputs.values())

        table = read_feature_table(settings, dataset).dropna().groupby(dataset.entity_column).tail(3)
        features = table[feature_names(dataset)].astype("float64")
        named = model.predict(features.assign(**{dataset.entity_column: table[dataset.entity_column]}))
        anonymous = model.predict(features)
        assert point_columns(list(named.columns)) == step_columns(horizon)
        np.testing.assert_array_equal(named[step_columns(horizon)], anonymous[step_columns(horizon)])
        point = named[step_columns(horizon)].to_numpy()
        lower = named[band_columns(horizon, 0.95, "lower")].to_numpy()
        upper = named[band_columns(horizon, 0.95, "upper")].to_numpy()
        assert (lower < point).all()
        assert (point < upper).all()
        np.testing.assert_allclose(point - lower, upper - point)  # symmetric around the point
        calibration = model.unwrap_python_model().calibration
        assert sorted(calibration.by_entity) == ["site_0", "site_1"]
        # Adaptive widths: in units of each row's recent movement (its lags' mean absolute one-step change).
        assert calibration.scale_columns == tuple(f"{dataset.target}_lag_{lag}" for lag in range(24))
        moved = np.abs(np.diff(features[list(calibration.scale_columns)].to_numpy(), axis=1)).mean(axis=1)[:, None]
        assert (moved > calibration.scale_floor).all()
        np.testing.assert_allclose(calibration.row_scales(features, len(features)), moved)
        own = np.asarray([calibration.by_entity[e]["95"] for e in table[dataset.entity_column]]) * moved
        np.testing.assert_allclose(upper - point, own)
        shared = anonymous[band_columns(horizon, 0.95, "upper")].to_numpy() - point
        np.testing.assert_allclose(shared, np.asarray(calibration.widths["95"])[None, :] * moved)
        assert not np.allclose(own, shared), "the sites' own bands differ from the dataset's"


@pytest.mark.slow
def test_a_bundle_trained_with_quantile_objectives_answers_their_bands_through_the_pyfunc(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """intervals.method: quantile: the bundle carries one LightGBM per band edge as data, and the
    registered PyFunc answers bands that hold the point and nest, from the same feature rows."""
    import mlflow

    from model_bundle.quantiles import QUANTILES_DIR, QuantileBands
    from model_registry import tracking
    from model_training.train import train
    from tests.utils.data import SYNTHETIC_END, training_frame, write_dataset

    root = tmp_path_factory.mktemp("quantile-bundle")
    config = write_dataset(root / "dataset")
    settings = Settings(home=root / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    dataset = dataset.model_copy(update={"intervals": dataset.intervals.model_copy(update={"method": "quantile"})})
    frame = training_frame(dataset)
    frame.to_parquet(root / "training.parquet")
    fast = {"n_estimators": 30, "learning_rate": 0.2, "num_leaves": 7}
    outcome = train(settings, dataset, SYNTHETIC_END, "lightgbm", fast, str(root / "training.parquet"))

    assert mlflow.get_run(outcome.run_id).data.tags["interval_method"] == "quantile"
    model = mlflow.pyfunc.load_model(outcome.model_uri)
    bundle = model.unwrap_python_model()
    assert isinstance(bundle.calibration, QuantileBands)
    assert sorted(bundle.calibration.models) == ["0.025", "0.1", "0.9", "0.975"]
    files = {p.relative_to(p.parents[2]).as_posix() for p in root.joinpath("home").rglob(f"{QUANTILES_DIR}/*/*.txt")}
    assert any(f.startswith(f"{QUANTILES_DIR}/0.9/lightgbm_step_") for f in files), files

    rows = frame.tail(50)
    output = model.predict(rows[feature_names(dataset)].astype("float64"))
    horizon = dataset.horizon
    point = output[step_columns(horizon)].to_numpy()
    (lo80, hi80), (lo95, hi95) = (
        (output[band_columns(horizon, a, "lower")].to_numpy(), output[band_columns(horizon, a, "upper")].to_numpy())
        for a in (0.8, 0.95)
    )
    assert (lo95 <= lo80).all()
    assert (lo80 <= point).all()
    assert (point <= hi80).all()
    assert (hi80 <= hi95).all()
    assert (hi95 - lo95 > hi80 - lo80).mean() > 0.9  # the wider level is wider, not merely as wide
    assert not np.allclose(hi80 - point, point - lo80)  # not a symmetric conformal width


@pytest.mark.slow
def test_a_bundle_trained_from_a_series_first_rows_requires_every_feature(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A training window that starts with its series has rows without lags at its head; the bundle's
    input example comes from there, and MLflow marks a column with a missing example value optional.
    Every feature must stay required, or the gate asks the bundle to predict from the required ones
    only (and the entity column with them)."""
    import mlflow

    from model_bundle.outputs import feature_inputs, pyfunc_inputs
    from model_registry import tracking
    from model_training.train import train
    from tests.utils.data import SYNTHETIC_END, training_frame, write_dataset

    root = tmp_path_factory.mktemp("first-rows-bundle")
    config = write_dataset(root / "dataset")
    settings = Settings(home=root / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    frame = training_frame(dataset)
    assert frame[feature_names(dataset)].head(5).isna().any().any(), "the series' first rows have no lags"
    frame.to_parquet(root / "training.parquet")
    fast = {"n_estimators": 20, "max_depth": 3}
    outcome = train(settings, dataset, SYNTHETIC_END, "xgboost", fast, str(root / "training.parquet"))

    model = mlflow.pyfunc.load_model(outcome.model_uri)
    schema = model.metadata.get_input_schema()
    assert feature_inputs(schema) == feature_names(dataset)
    rows = frame.dropna(subset=feature_names(dataset)).tail(4)
    output = model.predict(pyfunc_inputs(schema, rows, dataset.entity_column))
    assert output[step_columns(dataset.horizon)].shape == (4, dataset.horizon)
