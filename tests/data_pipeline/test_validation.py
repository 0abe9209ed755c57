import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from data_pipeline.ingest import ingest
from data_pipeline.validation import DataValidationError, validate, validated_path
from feature_store.features import offline_source_path, write_offline_source
from tests.utils.data import ETT_CONFIG, synthetic_frame, write_dataset

pytestmark = pytest.mark.integration


def test_the_ett_data_passes_and_writes_result_and_docs(tmp_path: Path) -> None:
    ett = DatasetConfig.from_yaml(ETT_CONFIG)
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    day = date(2018, 6, 26)
    ingest(ett, day, settings)
    outcome = validate(ett, day, settings)
    assert outcome.success
    assert not outcome.failures
    assert outcome.result_path is not None
    assert json.loads(Path(outcome.result_path).read_text())["success"] is True
    assert outcome.data_docs_path is not None
    assert outcome.data_docs_path.is_file()
    assert Path(validated_path(settings, ett, day)).is_file()


def _drop_column(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(columns=["aux"])


def _duplicate_keys(f: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([f, f.iloc[10:13]], ignore_index=True)


def _out_of_range(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f.loc[[5, 6], "temp"] = 999.0
    return f


def _gap(f: pd.DataFrame) -> pd.DataFrame:
    return f.drop(index=range(100, 106)).reset_index(drop=True)  # six missing hours > max_gap of 3h


def _null_target(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    f.loc[[7], "temp"] = None
    return f


def _stale(f: pd.DataFrame) -> pd.DataFrame:
    stamps = pd.to_datetime(f["ts"])
    return f[stamps < stamps.max() - pd.Timedelta(days=3)]


def _empty(f: pd.DataFrame) -> pd.DataFrame:
    return f.iloc[0:0]


CORRUPTIONS: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame], list[str]]] = {
    "missing column": (_drop_column, ["expect_column_to_exist on aux"]),
    "duplicate keys": (_duplicate_keys, ["expect_compound_columns_to_be_unique on site,ts", "6 of"]),
    "out of range": (_out_of_range, ["expect_column_values_to_be_between on temp", "2 of"]),
    "gap": (_gap, ["expect_column_values_to_be_between on _step_seconds", "1 of"]),
    "null target": (_null_target, ["expect_column_values_to_not_be_null on temp", "1 of"]),
    "stale": (
        _stale,
        [
            "expect_column_min_to_be_between on _age_seconds",
            # in words: how old, when the data ends, which field to set
            "the newest row is 3 days old at the end of 2024-03-31 (allowed: 24 hours)",
            "the data ends 2024-03-28 22:00 UTC",
            "training window end (training_window_end)",
            "daily.history_end",
        ],
    ),
    "empty": (_empty, ["expect_table_row_count_to_be_between", "observed 0"]),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupted_input_stops_with_a_clear_message(tmp_path: Path, logical_date: date, case: str) -> None:
    corrupt, expected = CORRUPTIONS[case]
    config = DatasetConfig.from_yaml(write_dataset(tmp_path / "d", frame=corrupt(synthetic_frame())))
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    ingest(config, logical_date, settings)

    with pytest.raises(DataValidationError) as raised:
        validate(config, logical_date, settings)
    message = str(raised.value)
    for fragment in expected:
        assert fragment in message, message
    assert raised.value.outcome.result_path is not None
    assert Path(raised.value.outcome.result_path).is_file()
    # nothing downstream: no validated copy, and the feature step refuses to run
    assert not Path(validated_path(settings, config, logical_date)).exists()
    with pytest.raises(FileNotFoundError, match="run validate first"):
        write_offline_source(settings, config, logical_date)
    assert not offline_source_path(settings, config).exists()


def test_a_failed_rerun_withdraws_the_earlier_validated_copy(tmp_path: Path, logical_date: date) -> None:
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    good = DatasetConfig.from_yaml(write_dataset(tmp_path / "d"))
    ingest(good, logical_date, settings)
    validate(good, logical_date, settings)
    assert Path(validated_path(settings, good, logical_date)).exists()

    write_dataset(tmp_path / "d", frame=_out_of_range(synthetic_frame()))
    ingest(good, logical_date, settings)
    with pytest.raises(DataValidationError):
        validate(good, logical_date, settings)
    assert not Path(validated_path(settings, good, logical_date)).exists()
