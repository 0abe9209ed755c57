import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from data_pipeline.ingest import ingest
from data_pipeline.validation import DataValidationError, validate, validated_path
from feature_store.build import write_offline_source
from feature_store.features import offline_source_path
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


def _many_series_with_faults(tmp_path: Path) -> tuple[DatasetConfig, pd.DataFrame]:
    """Forty generated daily series, with faults spread over several of them, in the landing
    partition's order (by series, then time)."""
    from harness import series

    dataset = DatasetConfig.from_yaml(series.write(tmp_path / "d", 40, days=90, partition=40))
    frame = pd.read_parquet(tmp_path / "d" / "daily_40.parquet")
    frame["series"] = frame["series"].astype(str)
    names = sorted(frame["series"].unique())
    value = frame["value"].to_numpy(copy=True)
    for name in names[3::7]:  # out of range in six series
        value[frame.index[frame["series"] == name][5]] = -1.0
    for name in names[5::11]:  # missing values in four
        value[frame.index[frame["series"] == name][9]] = float("nan")
    frame["value"] = value
    stale = frame["series"].isin(names[:6]) & (frame["time"] > frame["time"].max() - pd.Timedelta(days=10))
    gap = (frame["series"] == names[20]) & frame["time"].between(
        frame["time"].max() - pd.Timedelta(days=30), frame["time"].max() - pd.Timedelta(days=25)
    )
    frame = frame[~stale & ~gap]
    twice = frame[frame["series"].isin(names[10::13])].iloc[::40]  # repeated keys in three
    frame = pd.concat([frame, twice]).sort_values(["series", "time"], kind="stable").reset_index(drop=True)
    return dataset, frame


def test_a_partition_checked_a_part_at_a_time_gets_the_result_of_one_check_of_every_row(tmp_path: Path) -> None:
    from data_pipeline.validation import validate_frame, validate_parts

    dataset, frame = _many_series_with_faults(tmp_path)
    # More rows than allowed in all, fewer in any part: only the whole's count fails.
    dataset = dataset.model_copy(update={"quality": dataset.quality.model_copy(update={"max_rows": len(frame) - 1})})
    day = frame["time"].max().date()
    names = sorted(frame["series"].unique())
    parts = [frame[frame["series"].isin(names[start : start + 6])] for start in range(0, len(names), 6)]
    assert len(parts) == 7
    assert sum(len(p) for p in parts) == len(frame)

    whole = validate_frame(frame, dataset, day, tmp_path / "whole")
    by_parts = validate_parts(parts, dataset, day, tmp_path / "parts")

    assert not whole.success
    assert {f.expectation for f in whole.failures} == {
        "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_compound_columns_to_be_unique",
    }
    assert by_parts.failures == whole.failures
    # The first six series stopped ten days early; the others are fresh: the whole is fresh, though
    # the first part alone is not.
    alone = validate_frame(parts[0], dataset, day, tmp_path / "first")
    assert any(f.column == "_age_seconds" for f in alone.failures)

    def results(outcome: Any) -> list[tuple[str, Any, bool, dict[str, Any]]]:
        payload = json.loads(Path(outcome.result_path).read_text())
        return [
            (
                r["expectation_config"]["type"],
                r["expectation_config"]["kwargs"].get("column"),
                r["success"],
                r["result"],
            )
            for r in payload["results"]
        ]

    assert results(by_parts) == results(whole)
    assert (
        json.loads(Path(by_parts.result_path).read_text())["statistics"]
        == json.loads(Path(whole.result_path).read_text())["statistics"]
    )
    # The Data Docs page shows the combined result: as many failed expectations as the whole's page.
    pages = [outcome.data_docs_path for outcome in (by_parts, whole)]
    assert all(page is not None for page in pages)
    failed = [page.read_text().count("fa-times text-danger") for page in pages if page is not None]
    assert failed[0] == failed[1] >= len(whole.failures)


def test_a_landed_partition_is_read_for_its_check_in_parts_of_whole_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.objects import ParquetRows
    from data_pipeline import validation
    from harness import series

    dataset = DatasetConfig.from_yaml(series.write(tmp_path / "d", 40, days=90, partition=40))
    settings = Settings(home=tmp_path / "home", source_roots=[tmp_path], _env_file=None)  # type: ignore[call-arg]
    day = series.END
    landed = ingest(dataset, day, settings)
    monkeypatch.setattr(validation, "ROWS_PER_PART", 500)
    parts = list(validation.landed_parts(ParquetRows(landed.path, settings), dataset))

    whole = pd.read_parquet(landed.path)
    assert len(parts) == -(-whole["series"].nunique() // (500 * whole["series"].nunique() // len(whole)))
    assert len(parts) > 5
    held = [set(part["series"]) for part in parts]
    assert all(not (a & b) for i, a in enumerate(held) for b in held[i + 1 :])  # each series in one part
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)

    outcome = validate(dataset, day, settings)
    assert outcome.success, outcome.failures
    assert Path(validated_path(settings, dataset, day)).read_bytes() == Path(landed.path).read_bytes()
