"""Hand-overs between tasks and training pods: the same calls on local files and on S3 (a moto server)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pytest

from core import objects
from core.dataset import DatasetConfig
from core.settings import Settings
from tests.utils.data import write_dataset
from tests.utils.platform import a_plan
from tests.utils.servers import moto_client


@pytest.fixture
def on_s3(moto_endpoint: str, tmp_path: Path) -> Settings:
    """Settings whose exchange is a fresh bucket of the moto server."""
    bucket = f"runs-{uuid.uuid4().hex[:8]}"
    moto_client(moto_endpoint).create_bucket(Bucket=bucket)
    return Settings(
        home=tmp_path / "home",
        exchange_uri=f"s3://{bucket}/exchange",
        source_roots=[tmp_path],
        s3_endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        _env_file=None,
    )  # type: ignore[call-arg]


def test_locations_join_and_split() -> None:
    assert objects.join("s3://runs/a/", "/b", "c.parquet") == "s3://runs/a/b/c.parquet"
    assert objects.split("s3://runs/a/b.json") == ("runs", "a/b.json")
    with pytest.raises(ValueError, match="s3://bucket/key"):
        objects.split("s3://runs")
    assert not objects.is_remote("/tmp/x")
    assert objects.is_remote("s3://runs/x")


@pytest.fixture(params=["local", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Settings, str]:
    """Settings and where their hand-overs go: a local folder, or a prefix in a fresh moto bucket."""
    if request.param == "s3":
        settings: Settings = request.getfixturevalue("on_s3")
        root = settings.exchange_uri
    else:
        settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
        root = str(tmp_path / "exchange")
    assert root is not None
    return settings, root


@pytest.mark.integration
def test_frames_and_bytes_go_and_come_back_the_same(place: tuple[Settings, str]) -> None:
    settings, root = place
    frame = pd.DataFrame({"entity": ["a", "b"], "value": [1.5, -2.0]})
    rows = objects.join(root, "run", "rows.parquet")
    assert not objects.exists(rows, settings)
    with pytest.raises(objects.ObjectStoreError, match=r"rows\.parquet"):
        objects.read_parquet(rows, settings)
    assert objects.write_parquet(frame, rows, settings) == rows
    assert objects.exists(rows, settings)
    pd.testing.assert_frame_equal(objects.read_parquet(rows, settings), frame)
    params = objects.join(root, "run", "params.json")
    objects.write_object(params, b'{"max_depth": 4}', settings)
    objects.write_object(params, b'{"max_depth": 5}', settings)  # a retry replaces it whole
    assert objects.read_object(params, settings) == b'{"max_depth": 5}'
    objects.write_parquet(frame, objects.join(root, "run-2", "rows.parquet"), settings)  # a sibling's name starts alike
    assert objects.list_locations(objects.join(root, "run"), settings) == sorted([params, rows])
    objects.delete(rows, settings)
    objects.delete(rows, settings)  # nothing there is no error
    assert not objects.exists(rows, settings)
    with pytest.raises(objects.ObjectNotFoundError, match=r"rows\.parquet"):
        objects.read_object(rows, settings)


@pytest.mark.integration
def test_a_published_dataset_config_reads_back_equal_from_the_object(on_s3: Settings, tmp_path: Path) -> None:
    """What a pod reads is the worker's config file, every field, its relative sources still naming the
    worker's files; the run's horizon comes with the command, as with the file."""
    config = write_dataset(tmp_path / "data")
    dataset = DatasetConfig.from_yaml(config)
    plan = a_plan(config, horizon=dataset.horizon + 1)
    published = plan.published_dataset(on_s3, dataset.with_horizon(plan.horizon))
    assert published == f"{on_s3.exchange_uri}/synthetic/2024-03-31/runs/manual__2024-03-31/dataset.yaml"
    back = DatasetConfig.from_yaml(published, on_s3)
    assert back == dataset
    assert back.base_dir == dataset.base_dir
    assert back.resolve_uri("raw.csv") == dataset.resolve_uri("raw.csv")
    command = plan.train_command("rows", "params", published)
    assert command[command.index("--horizon") + 1] == str(dataset.horizon + 1)
    assert plan.location(on_s3, dataset, "params.json") == published.replace("dataset.yaml", "params.json")


def test_without_an_exchange_the_run_hands_over_local_files(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    config = write_dataset(tmp_path / "data")
    dataset = DatasetConfig.from_yaml(config)
    plan = a_plan(config)
    assert plan.published_dataset(settings, dataset) == str(config)
    assert plan.location(settings, dataset, "rows.parquet") == str(plan.run_dir(settings, dataset) / "rows.parquet")


def test_the_shared_profiles_hand_over_through_object_storage() -> None:
    for profile in ("compose", "k8s"):
        shared = Settings(profile=profile, _env_file=None)  # type: ignore[call-arg]
        assert (shared.exchange_uri, shared.lake_uri) == ("s3://runs", "s3://lake")
    local = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (local.exchange_uri, local.lake_uri) == (None, None)
    with pytest.raises(ValueError, match="exchange_uri"):
        Settings(exchange_uri="/shared/runs", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="lake_uri"):
        Settings(lake_uri="/mnt/lake", _env_file=None)  # type: ignore[call-arg]


def test_reading_parquet_starts_no_thread_of_arrows_pools(tmp_path: Path) -> None:
    """The cause of the aborted exits below, seen every time rather than one exit in twelve: a read
    that started a pool thread leaves it to race the process's exit. The process's native threads
    (``/proc/self/task``) are counted after the imports and after the read."""
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    path = tmp_path / "rows.parquet"
    pd.DataFrame({f"c{i}": [float(i)] * 2000 for i in range(40)}).to_parquet(path)
    code = (
        "import os, pandas, pyarrow, pyarrow.parquet\n"
        "from core.objects import parquet_frame\n"
        "threads = lambda: len(os.listdir('/proc/self/task'))\n"
        f"before = threads(); frame = parquet_frame({str(path)!r}); print(before, threads(), frame.shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    before, after, *_ = done.stdout.split()
    assert after == before, "the read started a thread that outlives it"


@pytest.mark.slow
def test_a_process_that_read_parquet_exits_cleanly_on_a_busy_machine(tmp_path: Path) -> None:
    """Arrow's reads left work on its thread pools (pre-buffering's read-ahead futures, parallel
    decoding) after they returned; a process that exited meanwhile aborted (exit -6) after its work
    was done, which failed a finished training task. Busy cores (as under a scheduler running many
    tasks) make the race likely: about one exit in four aborted here with Arrow's defaults, and one in
    twelve once in CI with pre-buffering off, before the reads stopped using Arrow's pools."""
    import subprocess
    import sys

    from core.settings import PROJECT_ROOT

    path = tmp_path / "rows.parquet"
    pd.DataFrame({f"c{i}": [float(i)] * 2000 for i in range(40)}).to_parquet(path)  # 40 column chunks
    spin = "while True: pass"  # one more spinner than cores: the I/O threads wait for a core
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range((os.cpu_count() or 2) + 1)]
    try:
        code = f"from core.objects import parquet_frame; parquet_frame({str(path)!r})"
        runs = [subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True) for _ in range(12)]
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert [run.returncode for run in runs] == [0] * 12, [run.stderr.decode()[-300:] for run in runs]


@pytest.mark.integration
def test_a_table_written_a_part_at_a_time_appears_whole_or_not_at_all(place: tuple[Settings, str]) -> None:
    settings, root = place
    table = objects.join(root, "run", "rows.parquet")
    parts = [
        pd.DataFrame({"series": ["a", "a"], "hour": [1, 2], "value": [1.5, 2.5]}),
        pd.DataFrame({"series": pd.Series([], dtype=object), "hour": pd.Series([], dtype="int64"), "value": []}),
        pd.DataFrame({"series": ["b", "c"], "hour": [3.0, float("nan")], "value": [0.5, -1.0]}),
    ]

    def killed_halfway() -> None:
        with objects.parquet_parts(table, settings) as out:
            out.write(parts[0])
            raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError, match="killed"):
        killed_halfway()
    assert not objects.exists(table, settings), "a writer that fails publishes nothing"
    with objects.parquet_parts(table, settings) as out:
        for part in parts:
            out.write(part)
        assert not objects.exists(table, settings), "nothing is there before the last part"
    assert out.rows == 4
    back = objects.read_parquet(table, settings)
    assert back["series"].tolist() == ["a", "a", "b", "c"]
    assert back["hour"].tolist()[:3] == [1, 2, 3]
    assert pd.isna(back["hour"].iloc[3]), "an integer column missing a value in one part keeps it missing"

    rows = objects.ParquetRows(table, settings)
    assert rows.values("series") == ["a", "b", "c"]
    pd.testing.assert_frame_equal(rows.where("series", ["c", "a"]), back[back["series"] != "b"].reset_index(drop=True))
    assert rows.where("series", ["z"]).empty
    since = rows.since("hour", 2, ["series", "hour"])
    assert (list(since.columns), since["series"].tolist(), since["hour"].tolist()) == (
        ["series", "hour"],
        ["a", "b"],
        [2, 3],
    )
    assert rows.since("hour", 10, ["series"]).empty

    def losing_values() -> None:
        with objects.parquet_parts(table, settings) as out:
            out.write(parts[0])
            out.write(parts[0].assign(hour=1.5))

    with pytest.raises(ValueError, match="truncated"):
        losing_values()
    pd.testing.assert_frame_equal(objects.read_parquet(table, settings), back)
    with pytest.raises(objects.ObjectNotFoundError, match=r"other\.parquet"):
        objects.ParquetRows(objects.join(root, "other.parquet"), settings)


def test_a_file_sorted_by_a_column_is_read_a_part_at_a_time_from_its_own_row_groups(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "sorted.parquet"
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    with objects.parquet_parts(str(path), settings) as out:
        for name in ["a", "b", "c", "d"]:
            out.write(pd.DataFrame({"series": [name] * 3, "value": [1.0, 2.0, 3.0]}))
    assert pq.ParquetFile(path).num_row_groups == 4, "a row group per part"
    rows = objects.ParquetRows(str(path), settings)
    assert [g for g in range(4) if rows._may_hold(g, "series", "b", "c")] == [1, 2]
    assert rows.where("series", ["b", "c"])["series"].tolist() == ["b"] * 3 + ["c"] * 3
    assert [sorted(set(part["series"])) for part in rows.parts("series", 3)] == [["a", "b", "c"], ["d"]]


def test_a_columns_bounds_come_from_the_row_groups_statistics_or_from_its_values(tmp_path: Path) -> None:
    """The least and greatest time of a file: from its row groups' statistics, and the same from the
    values themselves where the file was written without statistics; a file of no rows has none."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    stamps = pd.date_range("2024-01-01", periods=9, freq="D", tz="UTC")
    table = pa.Table.from_pandas(pd.DataFrame({"t": stamps[[4, 0, 8, 2, 6, 1, 7, 3, 5]]}), preserve_index=False)
    for name, statistics in (("with.parquet", True), ("without.parquet", False)):
        pq.write_table(table, tmp_path / name, row_group_size=4, write_statistics=statistics)
        rows = objects.ParquetRows(str(tmp_path / name), settings)
        assert rows.bounds("t") == (stamps[0], stamps[-1]), name
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="no values of t"):
        objects.ParquetRows(str(tmp_path / "empty.parquet"), settings).bounds("t")


def test_rows_of_an_integer_key_are_found_by_its_text(tmp_path: Path) -> None:
    """A key column of integers is read by the keys' text, as the forecast table stores them; text
    that names no integer matches nothing, and no key at all gives no row."""
    settings = Settings(home=tmp_path / "home", _env_file=None)  # type: ignore[call-arg]
    path = tmp_path / "ints.parquet"
    pd.DataFrame({"store": [1, 1, 2, 3, 3, 3], "value": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]}).to_parquet(path)
    rows = objects.ParquetRows(str(path), settings)
    assert rows.where("store", ["3", "1"])["value"].tolist() == [1.0, 2.0, 4.0, 5.0, 6.0]
    assert rows.where("store", [2])["value"].tolist() == [3.0]
    assert rows.where("store", ["two", "2"])["value"].tolist() == [3.0]
    assert rows.where("store", ["two"]).empty
    assert list(rows.where("store", []).columns) == ["store", "value"]
