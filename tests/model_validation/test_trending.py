"""A dataset whose levels move on: daily random walks with drift, no covariates, a YAML of its own.

Its raw lags never match an earlier window, and the last value is the baseline to beat: the first
version must get through both gates on what the model sees, or the platform must say why at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from model_registry import tracking
from tests.utils.data import SYNTHETIC_END, write_random_walk_dataset
from tests.utils.platform import run_data_chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "levels_forecaster"


def test_a_dataset_whose_levels_move_on_gets_its_first_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from core.settings import get_settings
    from feature_drift.measure import drift_gate
    from feature_drift.outcomes import DriftOutcome
    from model_registry.__main__ import main as registry_cli
    from model_registry.registry import champion_version, register_challenger
    from model_training.train import train
    from model_validation.__main__ import main as validation_cli

    config = write_random_walk_dataset(tmp_path / "dataset")
    home = tmp_path / "home"
    settings = Settings(home=home, dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)
    run_id = train(settings, dataset, SYNTHETIC_END, tags={"test": "trending"}).run_id
    version = register_challenger(settings, MODEL, run_id, {"ge_result": "passed: test"}).version

    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLOPS_HOME", str(home))
    get_settings.cache_clear()
    try:
        assert registry_cli(["champion", "--dataset", str(config)]) == 3  # none yet: it says why and what to try
        assert "has no champion: v1 was not promoted (it has not been through the gates)" in capsys.readouterr().err
        args = ["promote", "--dataset", str(config), "--logical-date", SYNTHETIC_END.isoformat()]
        assert validation_cli(args) == 0, capsys.readouterr().out
        assert registry_cli(["champion", "--dataset", str(config)]) == 0
        said = capsys.readouterr().out
        assert f"{MODEL} champion: v{version}" in said, said
        assert "  drift gate: passed (drift share at most" in said, said
    finally:
        get_settings.cache_clear()

    assert champion_version(settings, MODEL) == version
    tags = tracking.client(settings).get_model_version(MODEL, version).tags
    assert tags["gate_drift"] == "passed", tags["gate_drift_reason"]
    assert tags["holdout_baseline"] == "naive"  # the last value is the harder baseline here
    naive = float(tags["holdout_baseline_mae"])
    assert float(tags["holdout_mae"]) < naive
    assert "< seasonal naive" in tags["gate_champion_challenger_reason"]
    # The decision is on each series' MAE over its own scale (MASE), averaged over the eight series.
    found = re.search(
        r"holdout MASE ([\d.]+) < seasonal naive ([\d.]+), < naive ([\d.]+)",
        reason := tags["gate_champion_challenger_reason"],
    )
    assert found is not None, reason
    mase, seasonal, last = (float(v) for v in found.groups())
    assert mase == pytest.approx(float(tags["holdout_mase"]), rel=1e-3)
    assert mase < last < seasonal, reason
    assert "0 of 8 series worse than seasonal naive" in reason
    # The same version judged on raw levels against its training rows: every entity's levels left them behind.
    import pandas as pd

    from core.columns import EVENT_TIMESTAMP
    from feature_store.features import offline_source_path

    params = tracking.client(settings).get_run(run_id).data.params
    features = pd.read_parquet(offline_source_path(settings, dataset))
    stamps = features[EVENT_TIMESTAMP]
    trained = features[
        (stamps >= pd.Timestamp(params["training_start"])) & (stamps <= pd.Timestamp(params["training_end"]))
    ]
    raw = dataset.model_copy(
        update={"promotion": dataset.promotion.model_copy(update={"drift_relative_levels": False})}
    )
    blocked = drift_gate(settings, raw, SYNTHETIC_END, trained, tmp_path / "raw")
    assert blocked.outcome is DriftOutcome.BLOCKED
    assert all((e.drift_share or 0.0) > dataset.promotion.max_drift_share for e in blocked.entities.values())


def test_where_nothing_beats_the_last_value_the_naive_family_is_the_champion_and_says_so(tmp_path: Path) -> None:
    """Random walks whose drift and weekly ripple each series hides in its noise: the naive family's
    forecasts are the naive baseline's, so the gate asks it to beat seasonal naive alone; it is
    promoted, and the service's answer names the family that answered."""
    import numpy as np
    from fastapi.testclient import TestClient

    from model_registry.promotion import promote_version
    from model_registry.registry import champion_version, register_challenger
    from model_serving.app import create_app
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of
    from tests.utils.data import random_walk_frame

    frame = random_walk_frame(series=4, days=2 * 365)
    rng = np.random.default_rng(3)
    frame["value"] = 500.0 + frame.groupby("series")["value"].transform(lambda v: rng.normal(0, 5, len(v)).cumsum())
    config = write_random_walk_dataset(tmp_path / "dataset", frame)
    settings = Settings(home=tmp_path / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)
    version = register_challenger(settings, MODEL, train(settings, dataset, SYNTHETIC_END, "naive").run_id).version
    decision = evaluate_challenger(settings, dataset, MODEL, version, holdout_of(settings, dataset, SYNTHETIC_END))
    assert decision.passed, decision.reason
    assert "= naive" in decision.reason
    assert "(its very forecasts)" in decision.reason
    promote_version(settings, MODEL, version, decision.reason)
    assert champion_version(settings, MODEL) == version
    with TestClient(create_app(settings)) as client:
        body = client.post("/v1/forecast", json={"entity_id": "s0"}).json()
    assert body["model_family"] == "naive", body
    assert len({point["value"] for point in body["forecast"]}) == 1, "the last value, for every step"
