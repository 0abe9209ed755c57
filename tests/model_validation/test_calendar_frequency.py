"""A monthly dataset (``frequency: P1M``) runs like an hourly one: the data check's grid and gap
rules, the features and their calendar values, the backtest windows, the gates, the served
forecast's target times and the forecast table, all on the first of each month.

A month is no fixed duration: taken as 30 days, most first-of-month rows fall off any grid.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from model_registry import tracking
from tests.utils.data import SYNTHETIC_END, monthly_frame, write_monthly_dataset
from tests.utils.platform import run_data_chain

pytestmark = [pytest.mark.integration]

MODEL = "sales_forecaster"
NEWEST = pd.Timestamp("2024-03-01", tz="UTC")  # the newest month on or before SYNTHETIC_END


def _settings(root: Path, config: Path) -> Settings:
    return Settings(home=root / "home", dataset_config=config, source_roots=[root], _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("change", "frequency", "expected"),
    [
        ("a row on the 15th", "P1M", ["expect_column_values_to_be_in_set on _off_grid_seconds", "1 of"]),
        ("a missing month", "P1M", ["expect_column_values_to_be_between on _step_seconds", "1 of"]),
        ("none", "P30D", ["expect_column_values_to_be_in_set on _off_grid_seconds"]),
    ],
)
def test_the_data_check_holds_monthly_rows_to_the_calendar(
    tmp_path: Path, change: str, frequency: str, expected: list[str]
) -> None:
    import yaml

    from data_pipeline.ingest import ingest
    from data_pipeline.validation import DataValidationError, validate

    frame = monthly_frame(series=3, months=48)
    if change == "a row on the 15th":
        frame.loc[10, "month"] = frame.loc[10, "month"][:8] + "15"
    elif change == "a missing month":
        frame = frame.drop(index=20).reset_index(drop=True)
    config = write_monthly_dataset(tmp_path / "dataset", frame)
    document = yaml.safe_load(config.read_text())
    document["quality"]["min_rows"] = 10
    config.write_text(yaml.safe_dump({**document, "frequency": frequency}))
    dataset = DatasetConfig.from_yaml(config)
    settings = _settings(tmp_path, config)
    ingest(dataset, SYNTHETIC_END, settings)
    with pytest.raises(DataValidationError) as raised:
        validate(dataset, SYNTHETIC_END, settings)
    for fragment in expected:
        assert fragment in str(raised.value), str(raised.value)

    # The same rows, unchanged, on the calendar's own grid pass.
    clean = write_monthly_dataset(tmp_path / "clean", monthly_frame(series=3, months=48))
    document = yaml.safe_load(clean.read_text())
    document["quality"]["min_rows"] = 10
    clean.write_text(yaml.safe_dump(document))
    clean_settings = _settings(tmp_path, clean)
    ingest(DatasetConfig.from_yaml(clean), SYNTHETIC_END, clean_settings)
    assert validate(DatasetConfig.from_yaml(clean), SYNTHETIC_END, clean_settings).success


@pytest.mark.slow
def test_a_monthly_dataset_trains_gates_serves_and_stores_its_forecasts_by_the_calendar(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from core.columns import EVENT_TIMESTAMP
    from feature_store.features import offline_source_path
    from forecast_store import store
    from model_registry.promotion import promote_version
    from model_registry.registry import register_challenger
    from model_serving.app import create_app
    from model_serving.batch import issue_day
    from model_training.backtest import make_folds
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    config = write_monthly_dataset(tmp_path / "dataset")
    settings = _settings(tmp_path, config)
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)

    features = pd.read_parquet(offline_source_path(settings, dataset))
    stamps = pd.DatetimeIndex(features[EVENT_TIMESTAMP])
    assert (stamps.day == 1).all()
    assert stamps.max() == NEWEST
    assert (features["month"].to_numpy() == stamps.month).all()
    assert (features["quarter"].to_numpy() == stamps.quarter).all()
    # Lag 11 is eleven months before, whatever the months' lengths in between.
    one = features[features["store"] == "store_0"].set_index(EVENT_TIMESTAMP).sort_index()
    assert one.loc[NEWEST, "units_lag_11"] == one.loc[NEWEST - pd.DateOffset(months=11), "units_lag_0"]

    outcome = train(settings, dataset, SYNTHETIC_END, "selection")
    run = tracking.client(settings).get_run(outcome.run_id)
    # The labelled rows end a horizon before the newest month (2023-09-01); the holdout is their
    # newest six months (P184D), and training ends a horizon before it starts.
    assert pd.Timestamp(run.data.params["training_end"]) == pd.Timestamp("2022-10-01", tz="UTC")
    # The backtest's folds walk back in whole months: 12 tested, 6 of gap before each.
    training_rows = features[stamps <= pd.Timestamp("2022-10-01", tz="UTC")]
    folds = make_folds(training_rows[EVENT_TIMESTAMP], dataset)
    assert [(f.train_end, f.cutoff, f.test_end) for f in folds] == [
        tuple(pd.Timestamp(t, tz="UTC") for t in window)
        for window in (("2020-04-01", "2020-10-01", "2021-10-01"), ("2021-04-01", "2021-10-01", "2022-10-01"))
    ]
    version = register_challenger(settings, MODEL, outcome.run_id, {"ge_result": "passed: test"}).version
    decision = evaluate_challenger(settings, dataset, MODEL, version, holdout_of(settings, dataset, SYNTHETIC_END))
    assert decision.passed, decision.reason
    promote_version(settings, MODEL, version, decision.reason)

    expected = [f"2024-{m:02d}-01T00:00:00Z" for m in range(4, 10)]
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/forecast", json={"entity_id": "store_3"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["feature_event_time"].startswith("2024-03-01"), body
    assert [p["timestamp"].replace("+00:00", "Z") for p in body["forecast"]] == expected, body

    issued = issue_day(settings, dataset, date(2024, 3, 31))
    assert issued.rows == 12 * dataset.horizon
    rows = store.issued(settings, dataset.name, data_date=date(2024, 3, 31))
    targets = {(r.step, pd.Timestamp(r.target_time).tz_convert("UTC")) for r in rows}
    assert targets == {(h, pd.Timestamp(t)) for h, t in enumerate(expected, start=1)}
