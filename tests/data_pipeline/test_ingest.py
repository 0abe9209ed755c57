from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from core.windows import end_of
from data_pipeline.ingest import ingest
from data_pipeline.sources import SourceError
from tests.utils.data import synthetic_frame, write_dataset
from tests.utils.servers import moto_client

pytestmark = pytest.mark.integration


def test_rerunning_a_date_replaces_its_partition(
    settings: Settings, dataset: DatasetConfig, logical_date: date
) -> None:
    first = pd.read_parquet(ingest(dataset, logical_date, settings).path)
    landed = ingest(dataset, logical_date, settings)
    path = Path(landed.path)
    second = pd.read_parquet(path)
    assert landed.rows == len(second)
    pd.testing.assert_frame_equal(first, second)
    assert not second.duplicated(["site", "ts"]).any()
    assert [p.name for p in path.parent.iterdir()] == ["data.parquet"]  # no temp files left


def test_a_partition_holds_what_was_known_at_the_end_of_its_date(
    settings: Settings, dataset: DatasetConfig, logical_date: date
) -> None:
    earlier = date(2024, 3, 20)
    landed = pd.read_parquet(ingest(dataset, earlier, settings).path)
    assert landed["ts"].max() < pd.Timestamp(end_of(earlier))
    assert landed["ts"].max() == pd.Timestamp(end_of(earlier)) - pd.Timedelta(hours=1)
    full = pd.read_parquet(ingest(dataset, logical_date, settings).path)
    assert len(full) > len(landed)
    assert str(full["ts"].dtype) == "datetime64[ns, UTC]"


def test_wide_per_entity_ett_files_become_one_long_table(tmp_path: Path) -> None:
    from tests.utils.data import ETT_CONFIG

    ett = DatasetConfig.from_yaml(ETT_CONFIG)
    settings = Settings(home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    landed = pd.read_parquet(ingest(ett, date(2016, 7, 2), settings).path)
    assert list(landed.columns) == [
        "transformer_id",
        "date",
        "OT",
        "HUFL",
        "HULL",
        "MUFL",
        "MULL",
        "LUFL",
        "LULL",
    ]
    assert landed.groupby("transformer_id").size().to_dict() == {"ETTh1": 48, "ETTh2": 48}


def test_missing_source_file_is_a_clear_error(settings: Settings, tmp_path: Path, logical_date: date) -> None:
    config = DatasetConfig.from_yaml(write_dataset(tmp_path / "d", source_uri="nowhere.csv"))
    with pytest.raises(SourceError, match=r"source file not found: .*nowhere\.csv"):
        ingest(config, logical_date, settings)


def test_s3_source_over_http_lands_the_same_rows(
    moto_endpoint: str, tmp_path: Path, settings: Settings, dataset: DatasetConfig, logical_date: date
) -> None:
    s3 = moto_client(moto_endpoint)
    s3.create_bucket(Bucket="raw")
    s3.put_object(Bucket="raw", Key="series/series.csv", Body=synthetic_frame().to_csv(index=False).encode())
    s3_config = DatasetConfig.from_yaml(write_dataset(tmp_path / "s3", source_uri="s3://raw/series/series.csv"))
    s3_settings = Settings(
        home=tmp_path / "s3home",
        s3_endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        source_buckets=["raw"],
        _env_file=None,
    )  # type: ignore[call-arg]
    from_s3 = pd.read_parquet(ingest(s3_config, logical_date, s3_settings).path)
    local = pd.read_parquet(ingest(dataset, logical_date, settings).path)
    pd.testing.assert_frame_equal(from_s3, local)

    missing = DatasetConfig.from_yaml(write_dataset(tmp_path / "s3m", source_uri="s3://raw/absent.csv"))
    with pytest.raises(SourceError, match=r"s3://raw/absent\.csv"):
        ingest(missing, logical_date, s3_settings)


def test_a_day_not_yet_in_the_source_is_refused_before_anything_lands(
    settings: Settings, dataset: DatasetConfig, logical_date: date, tmp_path: Path
) -> None:
    from core.objects import exists
    from core.partitions import landing_path
    from data_pipeline.ingest import DayNotArrivedError

    # The file as it stands when the day's export is late: it ends with the day before. Freshness
    # alone (max_age P2D) would let it through and land a day without its rows.
    late = synthetic_frame(end=logical_date - pd.Timedelta(days=1))
    late_config = write_dataset(tmp_path / "late", late)
    late_dataset = DatasetConfig.from_yaml(late_config)
    with pytest.raises(DayNotArrivedError, match=rf"does not hold {logical_date} yet: site_0 \(newest row"):
        ingest(late_dataset, logical_date, settings, complete_day=True)
    assert not exists(landing_path(settings, late_dataset, logical_date), settings)
    assert ingest(late_dataset, logical_date, settings).rows == len(late)  # a retraining's read still lands it

    # One entity's rows of the day stop more than max_gap (6 h) before its end: still not arrived.
    partial = synthetic_frame()
    stamps = pd.to_datetime(partial["ts"])
    cut = (partial["site"] == "site_1") & (stamps >= pd.Timestamp(logical_date) + pd.Timedelta(hours=17))
    partial_dataset = DatasetConfig.from_yaml(write_dataset(tmp_path / "partial", partial[~cut]))
    with pytest.raises(DayNotArrivedError, match="site_1"):
        ingest(partial_dataset, logical_date, settings, complete_day=True)

    # The whole day arrived (the file the retry reads): landed.
    landed = ingest(dataset, logical_date, settings, complete_day=True)
    assert pd.read_parquet(landed.path)["ts"].max() == pd.Timestamp(end_of(logical_date)) - pd.Timedelta(hours=1)


def test_a_source_read_a_chunk_at_a_time_lands_as_if_read_whole(
    settings: Settings, tmp_path: Path, logical_date: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    from data_pipeline import ingest as ingest_module

    frame = synthetic_frame(entities=12, days=20).sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame["aux"] = frame["aux"].round().astype(int)  # integers in the first chunks ...
    frame.loc[len(frame) - 5, "aux"] = 2.5  # ... and a fraction in the last
    again = frame.iloc[[10, 400, 2000]].assign(temp=-1.0)  # keys read twice: their order is the source's
    frame = pd.concat([frame, again], ignore_index=True)
    frame.loc[7, "ts"] = None  # a row without a time
    config = DatasetConfig.from_yaml(write_dataset(tmp_path / "d", frame=frame))
    monkeypatch.setattr(ingest_module, "CHUNK_ROWS", 1000)
    monkeypatch.setattr(ingest_module, "ROW_GROUP_ROWS", 700)
    landed = ingest(config, logical_date, settings)

    whole = pd.read_csv(tmp_path / "d" / "series.csv")
    whole["ts"] = pd.to_datetime(whole["ts"], utc=True)
    whole["site"] = whole["site"].astype(str)
    known = whole[whole["ts"] < pd.Timestamp(end_of(logical_date))]
    expected = known.sort_values(["site", "ts"], kind="stable").reset_index(drop=True)[list(config.raw_columns)]
    assert len(frame) > 4 * 1000  # several chunks
    got = pd.read_parquet(landed.path)
    pd.testing.assert_frame_equal(got, expected)
    assert landed.rows == len(expected)
    assert pq.ParquetFile(landed.path).num_row_groups == -(-len(expected) // 700)


def test_a_key_column_whose_name_needs_quoting_lands_ordered(
    settings: Settings, tmp_path: Path, logical_date: date
) -> None:
    import yaml

    frame = synthetic_frame(entities=3, days=5).sample(frac=1.0, random_state=1).rename(columns={"site": 'si"te'})
    path = write_dataset(tmp_path / "d", frame=frame)
    config = yaml.safe_load(path.read_text())
    config["entity_column"] = 'si"te'
    path.write_text(yaml.safe_dump(config))
    landed = pd.read_parquet(ingest(DatasetConfig.from_yaml(path), logical_date, settings).path)
    stamps = pd.to_datetime(landed["ts"])
    assert list(landed['si"te'].unique()) == ["site_0", "site_1", "site_2"]
    assert stamps.groupby(landed['si"te']).is_monotonic_increasing.all()
