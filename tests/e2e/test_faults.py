"""Faults with nothing lost: an unavailable S3, a writer killed halfway, a failed materialization and a
retried retraining run, each on the real component (moto over HTTP, a killed process, redis-server,
MLflow's registry)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import numpy as np
import pandas as pd
import pytest
import redis

from core.columns import EVENT_TIMESTAMP, feature_names
from core.dataset import DatasetConfig
from core.files import write_atomically
from core.objects import s3_client
from core.partitions import partition_dates, partition_dir, partition_path, read_landed, validated_path, validated_root
from core.settings import PROJECT_ROOT, OnlineStoreKind, Settings
from core.windows import end_of
from data_pipeline.ingest import ingest
from data_pipeline.sources import SourceError, read_bytes
from data_pipeline.validation import DataValidationError, validate
from feature_store.build import write_offline_source
from feature_store.features import history_source_path, offline_source_path
from feature_store.repo import apply_and_materialize, feature_view_name, get_store, materialize
from simulation.stack import FlakyS3
from tests.utils.data import SYNTHETIC_END, synthetic_frame, write_dataset
from tests.utils.platform import run_data_chain
from tests.utils.servers import free_port, moto_client

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# --- S3 unavailable: retried with backoff, then a clear failure (S3's 503s from simulation.stack.FlakyS3) ---


@pytest.fixture
def s3_object(moto_endpoint: str) -> tuple[str, bytes]:
    """A CSV of the synthetic series in a fresh moto bucket: its s3:// URI and its bytes."""
    s3 = moto_client(moto_endpoint)
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    body = synthetic_frame().to_csv(index=False).encode()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="series/series.csv", Body=body)
    return f"s3://{bucket}/series/series.csv", body


def s3_settings(home: Path, endpoint: str, uri: str, **values: object) -> Settings:
    """Settings reading ``uri``'s bucket (the source policy's list) through ``endpoint``."""
    return Settings(
        home=home,
        s3_endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        source_buckets=[urlparse(uri).netloc],
        _env_file=None,  # type: ignore[call-arg]
        **values,
    )


def test_s3_answering_503_twice_is_retried_and_the_read_succeeds(
    moto_endpoint: str, s3_object: tuple[str, bytes], tmp_path: Path
) -> None:
    uri, body = s3_object
    with FlakyS3(moto_endpoint, failures=2) as proxy:
        settings = s3_settings(tmp_path, proxy.url, uri)
        assert settings.s3_max_attempts == 5
        assert read_bytes(uri, settings) == body
    key = urlparse(uri)
    assert proxy.requests == [f"GET /{key.netloc}{key.path}"] * 3


def test_s3_that_stays_unavailable_fails_the_ingest_after_the_configured_attempts_and_lands_nothing(
    moto_endpoint: str, s3_object: tuple[str, bytes], tmp_path: Path, logical_date: date
) -> None:
    uri, _ = s3_object
    dataset = DatasetConfig.from_yaml(write_dataset(tmp_path / "dataset", source_uri=uri))
    with FlakyS3(moto_endpoint, failures=None) as proxy:
        settings = s3_settings(tmp_path / "home", proxy.url, uri, s3_max_attempts=3)
        with pytest.raises(SourceError) as failure:
            ingest(dataset, logical_date, settings)
    assert len(proxy.requests) == 3
    message = str(failure.value)
    assert f"cannot read {uri} from {proxy.url}: gave up after 3 attempts (at most 3" in message
    assert "SlowDown" in message
    assert not partition_path(settings.landing, dataset, logical_date).exists()
    assert partition_dates(settings.landing, dataset, settings) == []


def test_s3_endpoint_where_nothing_listens_is_a_clear_error_in_bounded_time(
    s3_object: tuple[str, bytes], tmp_path: Path
) -> None:
    uri, _ = s3_object
    endpoint = f"http://127.0.0.1:{free_port()}"
    settings = s3_settings(tmp_path, endpoint, uri, s3_max_attempts=2)
    with pytest.raises(SourceError, match=rf"cannot read {uri} from {endpoint}: gave up after 2 attempts"):
        read_bytes(uri, settings)
    # What bounds the time: two attempts in all, one standard backoff between them, no long connect waits.
    config = s3_client(settings).meta.config
    assert config.retries == {"total_max_attempts": 2, "mode": "standard"}
    assert config.connect_timeout == 5


# --- A writer killed halfway leaves the previous partition, and no reader sees its leftovers ----

# Tens of megabytes of random floats (parquet cannot shrink them): the write takes long enough to be
# caught in the middle.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from core.files import write_atomically

    frame = pd.DataFrame(np.random.default_rng(0).random((1_500_000, 8)), columns=[f"c{i}" for i in range(8)])
    write_atomically(frame, Path(sys.argv[1]))
    """
)


def kill_while_writing(path: Path) -> Path:
    """Start a process writing a large partition at ``path`` and SIGKILL it once its temporary file
    exists; returns that leftover file."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 60
    try:
        while not (leftovers := list(path.parent.glob(f".{path.name}.*.tmp"))):
            assert writer.poll() is None, f"the writer ended before it was killed (exit code {writer.returncode})"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.002)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL
    return leftovers[0]


def test_a_writer_killed_mid_write_leaves_the_earlier_partition_and_a_retry_replaces_it(
    settings: Settings, dataset: DatasetConfig, logical_date: date
) -> None:
    path = partition_path(settings.landing, dataset, logical_date)
    earlier = synthetic_frame(days=3)
    write_atomically(earlier, path)
    earlier_bytes = path.read_bytes()

    leftover = kill_while_writing(path)
    assert leftover.exists()  # killed before its rename: the rename is the only publication
    assert path.read_bytes() == earlier_bytes
    pd.testing.assert_frame_equal(read_landed(settings, dataset, logical_date), earlier)
    # Readers by pattern or by folder skip the hidden temporary file.
    assert [p.name for p in path.parent.glob("*.parquet")] == ["data.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(path.parent), earlier)

    # A killed first write of a new date is no partition at all.
    new_date = logical_date + timedelta(days=1)
    kill_while_writing(partition_path(settings.landing, dataset, new_date))
    assert partition_dir(settings.landing, dataset, new_date).is_dir()
    assert partition_dates(settings.landing, dataset, settings) == [logical_date]

    retried = synthetic_frame(days=5)
    write_atomically(retried, path)  # the task's retry
    pd.testing.assert_frame_equal(read_landed(settings, dataset, logical_date), retried)
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]  # the killed writer's file is gone


# --- A failed materialization leaves the last good features online ------------------------------

ENTITIES = ["site_0", "site_1"]


def online_hashes(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every Redis hash Feast wrote for ``project`` (its keys end with the project's name), byte for byte."""
    keys = [key for key in client.scan_iter(count=1000) if key.endswith(project.encode())]
    return {key: client.hgetall(key) for key in keys}


def newest_offline_rows(settings: Settings, dataset: DatasetConfig) -> tuple[np.ndarray, list[datetime]]:
    """The features the online store should hold: each entity's newest row of the offline source."""
    table = pd.read_parquet(offline_source_path(settings, dataset)).sort_values(EVENT_TIMESTAMP)
    newest = table.groupby(dataset.entity_column).tail(1).set_index(dataset.entity_column).loc[ENTITIES]
    stamps = [t.to_pydatetime() for t in pd.to_datetime(newest[EVENT_TIMESTAMP], utc=True)]
    return newest[feature_names(dataset)].to_numpy(dtype="float64"), stamps


def test_a_failed_materialization_keeps_the_last_good_features_online_and_a_retry_loads_the_new_day(
    tmp_path: Path, redis_server: int
) -> None:
    from model_serving.online_features import RedisReader

    source = synthetic_frame()
    config = write_dataset(tmp_path / "dataset", source)
    dataset = DatasetConfig.from_yaml(config)
    project = f"faults_{uuid.uuid4().hex[:8]}"  # its own keys in the shared server
    settings = Settings(
        home=tmp_path / "home",
        dataset_config=config,
        online_store=OnlineStoreKind.REDIS,
        redis_host="127.0.0.1",
        redis_port=redis_server,
        redis_password="test-secret",
        feast_project=project,
        _env_file=None,
    )  # type: ignore[call-arg]
    day, next_day = SYNTHETIC_END - timedelta(days=1), SYNTHETIC_END
    columns = feature_names(dataset)
    server = redis.Redis(port=redis_server, password="test-secret")

    run_data_chain(settings, dataset, day)
    last_good = online_hashes(server, project)
    assert len(last_good) == len(ENTITIES)
    reader = RedisReader(settings, dataset, get_store(settings))
    served = reader.read(ENTITIES, columns)
    values, stamps = newest_offline_rows(settings, dataset)
    assert served.event_times == stamps == [end_of(day) - timedelta(hours=1)] * 2
    np.testing.assert_array_equal(served.features.to_numpy(), values)

    def assert_last_good_online() -> None:
        assert online_hashes(server, project) == last_good
        now = reader.read(ENTITIES, columns)
        assert now.event_times == served.event_times
        pd.testing.assert_frame_equal(now.features, served.features, check_exact=True)

    # Fault 1: the next day's data fails validation (an impossible reading); the chain stops before
    # anything reaches the offline or online store. The hourly materialization runs on over that day,
    # finds nothing new and records the day as loaded.
    broken = source.copy()
    broken.loc[broken["ts"] == f"{next_day} 12:00:00", "temp"] = 999.0
    broken.to_csv(config.parent / "series.csv", index=False)
    ingest(dataset, next_day, settings)
    with pytest.raises(DataValidationError, match="expect_column_values_to_be_between on temp"):
        validate(dataset, next_day, settings)
    assert not Path(validated_path(settings, dataset, next_day)).exists()
    materialize(settings, dataset, end_of(next_day))
    assert get_store(settings).get_feature_view(feature_view_name(dataset)).most_recent_end_time == end_of(next_day)
    assert_last_good_online()

    # Fault 2: the next day's features are corrupt on disk; Feast fails reading them, before any write.
    source.to_csv(config.parent / "series.csv", index=False)
    ingest(dataset, next_day, settings)
    validate(dataset, next_day, settings)
    features = Path(write_offline_source(settings, dataset, next_day).path)
    intact = features.read_bytes()
    features.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(duckdb.Error, match="No magic bytes found"):
        apply_and_materialize(settings, dataset, end_of(next_day))
    assert_last_good_online()
    features.write_bytes(intact)

    # Fault 3: the online store is down while materializing.
    down = settings.model_copy(update={"redis_port": free_port()})
    with pytest.raises(redis.exceptions.ConnectionError):
        materialize(down, dataset, end_of(next_day))
    assert_last_good_online()

    # Fault 4: Redis is out of memory and refuses every write, while it still serves reads.
    memory = server.config_get("maxmemory")["maxmemory"]
    policy = server.config_get("maxmemory-policy")["maxmemory-policy"]
    server.config_set("maxmemory-policy", "noeviction")
    server.config_set("maxmemory", 1)
    try:
        with pytest.raises(redis.exceptions.ResponseError, match="used memory > 'maxmemory'"):
            materialize(settings, dataset, end_of(next_day))
        assert_last_good_online()
    finally:
        server.config_set("maxmemory", memory)
        server.config_set("maxmemory-policy", policy)

    # The retry after the faults are fixed loads the next day, although Feast recorded it as loaded.
    materialize(settings, dataset, end_of(next_day))
    loaded = reader.read(ENTITIES, columns)
    values, stamps = newest_offline_rows(settings, dataset)
    assert loaded.event_times == stamps == [end_of(next_day) - timedelta(hours=1)] * 2
    np.testing.assert_array_equal(loaded.features.to_numpy(), values)
    assert online_hashes(server, project).keys() == last_good.keys()


# --- A retried retraining run produces one set of outputs ---------------------------------------


def test_a_retried_retraining_run_lands_each_partition_once_and_registers_one_version(
    settings: Settings, dataset: DatasetConfig, logical_date: date
) -> None:
    from model_registry.registry import alias_version, register_run_of
    from model_registry.tracking import CHALLENGER, client
    from model_training.train import train

    dag_run_id = f"manual__{logical_date}T00:00:00+00:00"
    model = settings.model_name(dataset.name)
    for _ in range(2):  # every data task of the run, retried once
        run_data_chain(settings, dataset, logical_date)
    for root in (settings.landing, validated_root(settings)):
        assert partition_dates(root, dataset, settings) == [logical_date]
        assert sorted(p.name for p in partition_dir(root, dataset, logical_date).iterdir()) == ["data.parquet"]
    landed = read_landed(settings, dataset, logical_date)
    assert not landed.duplicated([dataset.entity_column, dataset.timestamp_column]).any()
    offline = offline_source_path(settings, dataset)
    # the features, the note of the day they were built from and the histories; no leftover of a retried write
    history = history_source_path(settings, dataset)
    assert sorted(p.name for p in offline.parent.iterdir()) == sorted(
        [f"{offline.stem}.built_from.json", offline.name, history.name]
    )

    first_run = train(settings, dataset, logical_date, tags={"dag_run_id": dag_run_id}).run_id
    first = register_run_of(settings, model, "dag_run_id", dag_run_id)
    assert register_run_of(settings, model, "dag_run_id", dag_run_id) == first  # registration retried
    # train_final retried after its first attempt had logged a finished run: two runs, one tag.
    second_run = train(settings, dataset, logical_date, tags={"dag_run_id": dag_run_id}).run_id
    assert second_run != first_run
    again = register_run_of(settings, model, "dag_run_id", dag_run_id)
    assert again == first
    assert again.run_id == first_run
    versions = [(str(v.version), v.run_id, v.tags["dag_run_id"]) for v in client(settings).search_model_versions()]
    assert versions == [(first.version, first_run, dag_run_id)]
    assert alias_version(settings, model, CHALLENGER) == first.version
