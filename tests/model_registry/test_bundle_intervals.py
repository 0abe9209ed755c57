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
    from model_registry.provenance import load_trusted

    settings, dataset = trained
    tracking.configure(settings)
    model = load_trusted(settings, settings.model_name(dataset.name), "1")
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
    own = np.asarray([calibration.by_entity[e]["95"] for e in table[dataset.entity_column]])
    np.testing.assert_allclose(upper - point, own)
    shared = anonymous[band_columns(horizon, 0.95, "upper")].to_numpy() - point
    np.testing.assert_allclose(shared, np.broadcast_to(calibration.widths["95"], shared.shape))
    assert not np.allclose(own, shared), "the sites' own bands differ from the dataset's"
