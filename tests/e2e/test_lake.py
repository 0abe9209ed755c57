"""Tasks that share no filesystem: with ``MLOPS_LAKE_URI`` and ``MLOPS_EXCHANGE_URI`` on object storage
(a moto server), the Feast registry on PostgreSQL and the online store on Redis, as in the k8s profile,
each data task starts in an empty home, as a KubernetesExecutor worker pod does (the same image, the
same ``MLOPS_HOME``, nothing of the pods before it), and finds everything it needs."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import OnlineStoreKind, Settings
from tests.utils.data import SYNTHETIC_END, synthetic_frame, write_dataset
from tests.utils.servers import moto_client

pytestmark = pytest.mark.integration


@pytest.fixture
def pods(
    tmp_path: Path, moto_endpoint: str, postgres_url: str, redis_server: int
) -> Iterator[Callable[[str], Settings]]:
    """A maker of a task pod's settings: a fresh, empty home per pod; the bucket, registry database and
    Feast project are this test's own."""
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    bucket = f"platform-{suffix}"
    moto_client(moto_endpoint).create_bucket(Bucket=bucket)
    server = postgres_url.rsplit("/", 1)[0]
    with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE feast_{suffix}")
    home = tmp_path / "pod"  # every worker pod runs the same image with the same MLOPS_HOME

    def pod(name: str) -> Settings:
        shutil.rmtree(home, ignore_errors=True)  # the pod before this one is gone, and its files with it
        home.mkdir(parents=True)
        (home / "pod").write_text(name)
        return Settings(
            home=home,
            lake_uri=f"s3://{bucket}/lake",
            exchange_uri=f"s3://{bucket}/runs",
            s3_endpoint_url=moto_endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            source_buckets=[bucket],
            feast_registry=f"{server}/feast_{suffix}",
            feast_project=f"lake{suffix}",
            online_store=OnlineStoreKind.REDIS,
            redis_host="127.0.0.1",
            redis_port=redis_server,
            redis_password="test-secret",
            _env_file=None,
        )  # type: ignore[call-arg]

    pod.bucket = bucket  # type: ignore[attr-defined]
    yield pod
    shutil.rmtree(home, ignore_errors=True)


def local_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.home.rglob("*") if p.is_file() and p.name != "pod")


def test_each_data_task_in_a_fresh_pod_finds_what_the_last_one_left_in_object_storage(
    pods: Any, tmp_path: Path, moto_endpoint: str
) -> None:
    from core.objects import exists, list_locations
    from core.partitions import latest_validated_date, read_validated
    from data_pipeline.ingest import already_landed, ingest
    from data_pipeline.validation import DataValidationError, passed_check, validate
    from feature_drift.measure import current_window
    from feature_store.build import write_offline_source
    from feature_store.features import offline_source, offline_source_path, read_feature_table
    from feature_store.repo import get_store, load_day
    from feature_store.training_set import write_training_set
    from model_serving.batch import newest_features
    from tests.utils.platform import a_plan

    source = synthetic_frame()
    moto_client(moto_endpoint).put_object(
        Bucket=pods.bucket, Key="raw/series.csv", Body=source.to_csv(index=False).encode()
    )
    config = write_dataset(tmp_path / "image" / "configs", source_uri=f"s3://{pods.bucket}/raw/series.csv")
    dataset = DatasetConfig.from_yaml(config)
    day = SYNTHETIC_END

    ingesting = pods("ingest")
    landed = ingest(dataset, day, ingesting)
    assert landed.path == f"s3://{pods.bucket}/lake/landing/synthetic/ds={day}/data.parquet"

    validating = pods("validate")
    checked = validate(dataset, day, validating)
    assert checked.validated == f"s3://{pods.bucket}/lake/validated/synthetic/ds={day}/data.parquet"
    assert checked.result_path == f"s3://{pods.bucket}/lake/state/synthetic/ds={day}/validation/validation_result.json"

    featuring = pods("features")
    built = write_offline_source(featuring, dataset, day)
    assert built.path == f"s3://{pods.bucket}/lake/features/synthetic_features.parquet"
    assert local_files(featuring) == []  # nothing this task made stays behind in its pod

    loading = pods("materialize")
    assert offline_source(loading, dataset) == built
    loaded = load_day(loading, dataset, day)
    assert exists(f"s3://{pods.bucket}/lake/state/synthetic/ds={day}/online_features.json", loading)
    # Feast read the feature table through its offline source, fetched into this pod
    pd.testing.assert_frame_equal(
        pd.read_parquet(offline_source_path(loading, dataset)), read_feature_table(loading, dataset)
    )

    retrying = pods("materialize-retry")  # a retry lands in another pod: it sees the first load's marker
    assert load_day(retrying, dataset, day) == loaded
    online = (
        get_store(retrying)
        .get_online_features(
            features=[f"synthetic_features:{name}" for name in ("hour", "month")],
            entity_rows=[{dataset.entity_column: "site_0"}],
        )
        .to_dict()
    )
    assert online["hour"] != [None]

    training = pods("training-set")
    assert already_landed(dataset, day, training) == landed
    reused = passed_check(dataset, day, training)
    assert reused is not None
    assert (reused.success, reused.evaluated, reused.result_path, reused.validated) == (
        True,
        checked.evaluated,
        checked.result_path,
        checked.validated,
    )
    assert reused.data_docs_path is None  # the Data Docs stayed with the validate pod's reports
    assert latest_validated_date(training, dataset) == day
    plan = a_plan(config)
    rows = write_training_set(training, dataset, day, plan.location(training, dataset, "training_set.parquet"))
    assert rows.location.startswith(f"s3://{pods.bucket}/runs/")
    assert rows.rows > 0

    forecasting = pods("batch-forecast")
    newest = newest_features(forecasting, dataset, day)
    assert sorted(newest[dataset.entity_column]) == sorted(source["site"].unique())
    assert len(current_window(forecasting, dataset, day)) > 0

    # A bad next day fails its check in its own pod and leaves no validated partition behind.
    next_day = day + timedelta(days=1)
    broken = pd.concat([source, source.tail(3)])  # duplicated rows: the suite refuses them
    moto_client(moto_endpoint).put_object(
        Bucket=pods.bucket, Key="raw/series.csv", Body=broken.to_csv(index=False).encode()
    )
    ingest(dataset, next_day, pods("ingest-next"))
    with pytest.raises(DataValidationError):
        validate(dataset, next_day, pods("validate-next"))
    judging = pods("drift")
    assert latest_validated_date(judging, dataset) == day
    with pytest.raises(FileNotFoundError, match="no validated data"):
        read_validated(judging, dataset, next_day)
    assert passed_check(dataset, next_day, judging) is None
    lake = list_locations(f"s3://{pods.bucket}/lake", judging)
    assert [loc for loc in lake if "/validated/" in loc] == [checked.validated]
