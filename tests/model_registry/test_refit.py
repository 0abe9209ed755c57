"""The served model has seen the newest data: a training run fits its model again on every labelled row
(the promotion holdout included), the gates judge the fit that never saw the holdout, and the refit is
registered as a version of its own that names it.

One registry copy of the shared champion for the module: a run with a refit is trained and registered
(the evaluated fit, then its refit), the refit is promoted, and the shared champion's own version is
then gated against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.settings import Settings
from feature_store.outcomes import TrainingSet
from model_registry.outcomes import RegisteredVersion
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import on_registry_copy

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scenario]

MODEL = "synthetic_forecaster"


@dataclass
class Refitted:
    settings: Settings
    dataset: DatasetConfig
    rows: TrainingSet
    evaluated: RegisteredVersion
    refit: RegisteredVersion
    first_champion: str  # the shared champion's version, trained without a refit


@pytest.fixture(scope="module")
def refitted(trained: tuple[Settings, DatasetConfig], tmp_path_factory: pytest.TempPathFactory) -> Refitted:
    from feature_store.training_set import write_training_set
    from model_registry.registry import champion_version, register_challenger, register_refit
    from model_training.train import train

    shared, dataset = trained
    root = tmp_path_factory.mktemp("refit")
    settings = on_registry_copy(shared, root)
    first_champion = champion_version(settings, MODEL)
    assert first_champion is not None
    rows = write_training_set(settings, dataset, SYNTHETIC_END, str(root / "training_set.parquet"))
    assert rows.labelled_location is not None
    outcome = train(
        settings, dataset, SYNTHETIC_END, training_set=rows.location, labelled=rows.labelled_location
    )  # fmt: skip
    evaluated = register_challenger(settings, MODEL, outcome.run_id, {"ge_result": "passed: test"})
    refit = register_refit(settings, MODEL, evaluated)
    return Refitted(settings, dataset, rows, evaluated, refit, first_champion)


def _holdout(refitted: Refitted) -> pd.DataFrame:
    from core.objects import read_parquet

    return read_parquet(refitted.rows.holdout_location, refitted.settings)


def _holdout_mae(refitted: Refitted, version: str) -> float:
    from model_bundle.outputs import point_forecast
    from model_validation.champion import _predict, holdout_errors

    holdout = _holdout(refitted)
    output = _predict(refitted.settings, MODEL, version, holdout, refitted.dataset.entity_column)
    return holdout_errors(point_forecast(output), holdout, refitted.dataset)[0]


def test_every_labelled_row_is_written_beside_the_training_rows(refitted: Refitted) -> None:
    """The labelled rows are the training rows, the rows between them and the holdout (kept out of
    training so that no training label is a holdout target), and the holdout: each once."""
    from core.objects import read_parquet

    rows, settings = refitted.rows, refitted.settings
    assert rows.labelled_location is not None
    labelled = read_parquet(rows.labelled_location, settings)
    training = read_parquet(rows.location, settings)
    holdout = _holdout(refitted)
    assert rows.labelled_rows == len(labelled) > rows.rows + rows.holdout_rows
    key = [refitted.dataset.entity_column, EVENT_TIMESTAMP]
    assert not labelled.duplicated(key).any()
    assert labelled[EVENT_TIMESTAMP].min() == training[EVENT_TIMESTAMP].min()
    assert labelled[EVENT_TIMESTAMP].max() == holdout[EVENT_TIMESTAMP].max() > training[EVENT_TIMESTAMP].max()
    between = len(labelled) - len(training) - len(holdout)
    # the last training row's labels end one step before the holdout's first row
    assert between == (refitted.dataset.horizon - 1) * labelled[refitted.dataset.entity_column].nunique()


def test_the_refit_is_a_version_of_its_own_that_names_the_fit_the_gates_judge(refitted: Refitted) -> None:
    """One run, two bundles: the evaluated fit (the challenger) and the refit, which saw the holdout.
    Each version names the other; the refit's data window runs to the newest labelled row."""
    from model_registry.provenance import BUNDLE_DIGEST_TAG
    from model_registry.tracking import client

    mlflow = client(refitted.settings)
    evaluated = mlflow.get_model_version(MODEL, refitted.evaluated.version)
    refit = mlflow.get_model_version(MODEL, refitted.refit.version)
    assert refit.version != evaluated.version
    assert refit.run_id == evaluated.run_id
    assert refit.tags["fit"] == "refit"
    assert refit.tags["evaluated_version"] == str(evaluated.version)
    assert evaluated.tags["refit_version"] == str(refit.version)
    assert refit.tags["ge_result"] == "passed: test", "the evaluated version's lineage comes along"
    assert refit.tags[BUNDLE_DIGEST_TAG] != evaluated.tags[BUNDLE_DIGEST_TAG]
    run = mlflow.get_run(evaluated.run_id)
    assert run.data.params["refit_rows"] == str(refitted.rows.labelled_rows)
    start, end = refit.tags["data_window"].split("/")
    assert pd.Timestamp(end) == _holdout(refitted)[EVENT_TIMESTAMP].max()
    assert pd.Timestamp(end) > pd.Timestamp(evaluated.tags["data_window"].split("/")[1])
    assert start == evaluated.tags["data_window"].split("/")[0]
    assert "refit_seconds" in run.data.metrics


def test_registering_again_returns_the_same_versions(refitted: Refitted) -> None:
    """A retried registration (the challenger's, or the refit's) finds the version registered first:
    the run's refit is never taken for the run's own version."""
    from model_registry.registry import register_challenger, register_refit

    settings = refitted.settings
    assert register_challenger(settings, MODEL, refitted.evaluated.run_id).version == refitted.evaluated.version
    assert register_refit(settings, MODEL, refitted.evaluated) == refitted.refit


def test_the_refit_has_seen_the_holdout(refitted: Refitted) -> None:
    """On the holdout, the evaluated fit forecasts rows it never saw; the refit was fitted on them, so its
    error there is lower: it is the model that knows the newest data."""
    evaluated = _holdout_mae(refitted, refitted.evaluated.version)
    refit = _holdout_mae(refitted, refitted.refit.version)
    assert np.isfinite([evaluated, refit]).all()
    assert refit < evaluated


def test_a_refitted_champion_is_judged_by_its_evaluated_fit(refitted: Refitted) -> None:
    """Once the refit is champion, a challenger is gated against the champion's evaluated fit, never
    against a model that was fitted on the holdout's rows; the decision says so."""
    from model_registry.promotion import promote_version
    from model_validation.champion import evaluate_challenger

    settings = refitted.settings
    promote_version(settings, MODEL, refitted.refit.version, "refit of a passed version")
    decision = evaluate_challenger(settings, refitted.dataset, MODEL, refitted.first_champion, _holdout(refitted))
    assert decision.champion_version == refitted.refit.version
    assert f"judged by its evaluated fit v{refitted.evaluated.version}" in decision.reason
    assert decision.champion_mae == pytest.approx(_holdout_mae(refitted, refitted.evaluated.version))
    assert decision.champion_mae != pytest.approx(_holdout_mae(refitted, refitted.refit.version))
    # the version the gates judged, gated again against its own refit, has no champion to beat
    again = evaluate_challenger(settings, refitted.dataset, MODEL, refitted.evaluated.version, _holdout(refitted))
    assert again.champion_version is None


def test_without_refit_the_evaluated_fit_serves(refitted: Refitted, tmp_path: Path) -> None:
    """``training.refit: false``: no labelled rows are written, the run logs one bundle, and the version
    to serve is the challenger itself."""
    from feature_store.training_set import write_training_set
    from model_registry.registry import register_challenger, register_refit
    from model_training.train import train

    settings = refitted.settings
    dataset = refitted.dataset.model_copy(
        update={"training": refitted.dataset.training.model_copy(update={"refit": False})}
    )
    rows = write_training_set(settings, dataset, SYNTHETIC_END, str(tmp_path / "training_set.parquet"))
    assert rows.labelled_location is None
    assert not (tmp_path / "training_set.labelled.parquet").exists()
    outcome = train(settings, dataset, SYNTHETIC_END, family="naive", training_set=rows.location)
    challenger = register_challenger(settings, MODEL, outcome.run_id)
    assert register_refit(settings, MODEL, challenger) == challenger
