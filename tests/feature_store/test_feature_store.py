from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from core.columns import EVENT_TIMESTAMP, feature_names
from core.dataset import DatasetConfig
from core.partitions import read_validated
from core.settings import Settings
from core.windows import end_of
from feature_store.repo import feature_service_name, get_store, materialize, write_repo_config
from feature_store.training_set import get_training_set, label_names
from tests.utils.platform import run_data_chain

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def applied(settings: Settings, dataset: DatasetConfig, logical_date: date) -> tuple[Settings, DatasetConfig]:
    run_data_chain(settings, dataset, logical_date)
    return settings, dataset


def test_point_in_time_join_never_reaches_past_a_rows_timestamp(
    applied: tuple[Settings, DatasetConfig], logical_date: date
) -> None:
    settings, dataset = applied
    raw = read_validated(settings, dataset, logical_date).set_index(["site", "ts"])["temp"]
    store = get_store(settings)
    stamps = sorted(raw.index.get_level_values("ts").unique())[200:260]
    # Ask half an hour after each row: the join must hand back the row at or before that instant.
    entity_df = pd.DataFrame({"site": "site_0", EVENT_TIMESTAMP: [t + pd.Timedelta(minutes=30) for t in stamps]})
    joined = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(feature_service_name(dataset))
    ).to_df()
    joined[EVENT_TIMESTAMP] = pd.to_datetime(joined[EVENT_TIMESTAMP], utc=True)
    joined = joined.sort_values(EVENT_TIMESTAMP)
    expected = [raw[("site_0", t)] for t in stamps]
    later = [raw[("site_0", t + pd.Timedelta(hours=1))] for t in stamps]
    assert joined["temp_lag_0"].tolist() == pytest.approx(expected)
    assert joined["temp_lag_0"].tolist() != pytest.approx(later)


def test_training_set_rows_have_features_of_their_own_time(
    applied: tuple[Settings, DatasetConfig], logical_date: date
) -> None:
    settings, dataset = applied
    frame = get_training_set(settings, dataset, logical_date)
    raw = read_validated(settings, dataset, logical_date).set_index(["site", "ts"])["temp"]
    assert list(frame.columns) == ["site", EVENT_TIMESTAMP, *feature_names(dataset), *label_names(dataset)]
    sample = frame.sample(50, random_state=0)
    for _, row in sample.iterrows():
        t = row[EVENT_TIMESTAMP]
        assert row["temp_lag_0"] == pytest.approx(raw[(row["site"], t)])
        assert row["y_1"] == pytest.approx(raw[(row["site"], t + pd.Timedelta(hours=1))])
    window = dataset.training.window
    assert window is not None
    assert frame[EVENT_TIMESTAMP].max() - frame[EVENT_TIMESTAMP].min() < window


def test_online_store_serves_the_latest_row_and_rematerializing_is_idempotent(
    applied: tuple[Settings, DatasetConfig], logical_date: date
) -> None:
    settings, dataset = applied
    store = get_store(settings)
    service = store.get_feature_service(feature_service_name(dataset))
    first = store.get_online_features(features=service, entity_rows=[{"site": "site_1"}]).to_dict(
        include_event_timestamps=True
    )
    raw = read_validated(settings, dataset, logical_date)
    newest = raw[raw["site"] == "site_1"]["ts"].max()
    assert first["temp_lag_0__ts"][0] == int(newest.timestamp())
    assert first["temp_lag_0"][0] == pytest.approx(raw.set_index(["site", "ts"])["temp"][("site_1", newest)])

    materialize(settings, dataset, end_of(logical_date))  # again, same end: nothing changes
    again = store.get_online_features(features=service, entity_rows=[{"site": "site_1"}]).to_dict()
    assert again["temp_lag_0"] == first["temp_lag_0"]


def test_a_sql_registry_on_postgres_is_shared_without_a_shared_folder(
    dataset: DatasetConfig, dataset_path: Path, postgres_url: str, tmp_path: Path
) -> None:
    """The compose/k8s layout: Airflow applies the definitions, the service (another machine, another
    repo folder) reads them from PostgreSQL, and a second apply changes nothing."""
    import psycopg

    from feature_store.repo import apply, feature_view_name

    server = postgres_url.rsplit("/", 1)[0]
    with psycopg.connect(server.replace("+psycopg", "") + "/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE feast_registry")
    registry = f"{server}/feast_registry"

    def on(home: str) -> Settings:
        return Settings(home=tmp_path / home, dataset_config=dataset_path, feast_registry=registry, _env_file=None)  # type: ignore[call-arg]

    writer, reader = on("airflow"), on("serving")
    assert yaml.safe_load((write_repo_config(writer)).read_text())["registry"]["registry_type"] == "sql"
    apply(writer, dataset)
    apply(writer, dataset)  # idempotent
    store = get_store(reader)
    service = store.get_feature_service(feature_service_name(dataset))
    assert [p.name for p in service.feature_view_projections] == [feature_view_name(dataset)]
    assert not (tmp_path / "serving" / "feature_repo" / "registry.db").exists()
    assert sorted(v.name for v in store.list_feature_views()) == [f"{dataset.name}_features", f"{dataset.name}_history"]


def test_feature_store_yaml_holds_no_credential_and_feast_reads_them_from_the_environment(
    tmp_path: Path, dataset_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.repo_config import load_repo_config
    from pydantic import SecretStr

    from core.settings import OnlineStoreKind

    registry = "postgresql+psycopg://feast:registry-pw@db:5432/feast"
    settings = Settings(
        home=tmp_path,
        dataset_config=dataset_path,
        online_store=OnlineStoreKind.REDIS,
        redis_host="cache",
        redis_password=SecretStr("redis-pw"),
        feast_registry=registry,
        _env_file=None,  # type: ignore[call-arg]
    )
    path = write_repo_config(settings)
    text = path.read_text()
    assert "redis-pw" not in text
    assert "registry-pw" not in text
    # What the feast CLI (or feast serve) sees when it runs with the platform's settings.
    monkeypatch.setenv("MLOPS_REDIS_PASSWORD", "redis-pw")
    monkeypatch.setenv("MLOPS_FEAST_REGISTRY", registry)
    config = load_repo_config(path.parent, path)
    assert config.online_store.connection_string == "cache:6379,password=redis-pw"
    assert config.registry.path == registry


def daily_load(settings: Settings, dataset: DatasetConfig, day: date) -> None:
    """What ``ingest_<name>`` does for a day: land, check, build the features, load them."""
    from data_pipeline.ingest import ingest
    from data_pipeline.validation import validate
    from feature_store.build import write_offline_source
    from feature_store.repo import load_day

    ingest(dataset, day, settings)
    validate(dataset, day, settings)
    write_offline_source(settings, dataset, day)
    load_day(settings, dataset, day)


def online_lag_0(settings: Settings, dataset: DatasetConfig, entity: str) -> tuple[float, int]:
    store = get_store(settings)
    service = store.get_feature_service(feature_service_name(dataset))
    row = store.get_online_features(features=service, entity_rows=[{"site": entity}]).to_dict(
        include_event_timestamps=True
    )
    return row["temp_lag_0"][0], row["temp_lag_0__ts"][0]


@pytest.mark.parametrize("online", ["sqlite", "redis"])
def test_days_filled_out_of_order_and_a_corrected_day_replace_only_that_day(
    settings: Settings, dataset: DatasetConfig, dataset_path: Path, online: str, request: pytest.FixtureRequest
) -> None:
    """A backfilled older day replaces its own rows of the offline source and leaves the newer days
    (features never go back in time, online neither); a day re-run after its source was corrected
    replaces its rows offline and online, on Redis too, where Feast keeps a row of the same event
    time unless the view's rows are removed first."""
    from pydantic import SecretStr

    from core.settings import OnlineStoreKind
    from feature_store.features import offline_source, offline_source_path

    if online == "redis":
        settings = settings.model_copy(
            update={"online_store": OnlineStoreKind.REDIS, "redis_host": "127.0.0.1",
                    "redis_port": request.getfixturevalue("redis_server"), "redis_password": SecretStr("test-secret"),
                    # A project of its own: the session's Redis serves other tests the same entities.
                    "feast_project": "corrections"}
        )  # fmt: skip
    newest, older = date(2024, 3, 31), date(2024, 3, 29)
    daily_load(settings, dataset, newest)
    features = pd.read_parquet(offline_source_path(settings, dataset))
    served = online_lag_0(settings, dataset, "site_0")

    daily_load(settings, dataset, older)  # a backfill of an older day, after the newest
    after_backfill = pd.read_parquet(offline_source_path(settings, dataset))
    pd.testing.assert_frame_equal(after_backfill, features)
    assert offline_source(settings, dataset).logical_date == newest  # type: ignore[union-attr]
    assert online_lag_0(settings, dataset, "site_0") == served, "the online store went back in time"

    # The newest day corrected at its last hour, then re-run: its rows change, nothing else.
    source = pd.read_csv(dataset_path.parent / "series.csv", float_precision="round_trip")
    last = source["ts"] == f"{newest} 23:00:00"
    source.loc[last, "temp"] += 5.0
    source.to_csv(dataset_path.parent / "series.csv", index=False)
    daily_load(settings, dataset, newest)
    corrected = pd.read_parquet(offline_source_path(settings, dataset))
    assert len(corrected) == len(features)
    assert not corrected.duplicated(["site", EVENT_TIMESTAMP]).any()
    same = (corrected["temp_lag_0"] == features["temp_lag_0"]) | features["temp_lag_0"].isna()
    changed = (~same).to_numpy()
    stamps = corrected.loc[changed, EVENT_TIMESTAMP]
    assert set(stamps) == {pd.Timestamp(f"{newest} 23:00:00", tz="UTC")}
    assert changed.sum() == 2
    value, stamp = online_lag_0(settings, dataset, "site_0")
    assert (value, stamp) == (pytest.approx(served[0] + 5.0), served[1])


def test_the_online_store_serves_each_series_history_up_to_its_newest_value(
    applied: tuple[Settings, DatasetConfig], logical_date: date
) -> None:
    """The history view: each entity's last ``history_length`` target values, the newest at the
    features' own event time, and out of the training sets' FeatureService."""
    from core.columns import history_name
    from feature_store.repo import history_view_name

    settings, dataset = applied
    store = get_store(settings)
    name = history_name(dataset)
    online = store.get_online_features(
        features=[f"{history_view_name(dataset)}:{name}"], entity_rows=[{"site": "site_1"}]
    ).to_dict(include_event_timestamps=True)
    raw = read_validated(settings, dataset, logical_date)
    own = raw[raw["site"] == "site_1"].sort_values("ts")
    assert online[f"{name}__ts"][0] == int(own["ts"].max().timestamp())
    assert online[name][0] == pytest.approx(own["temp"].tail(dataset.history_length).tolist())
    service = store.get_feature_service(feature_service_name(dataset))
    assert [p.name for p in service.feature_view_projections] == [f"{dataset.name}_features"]
