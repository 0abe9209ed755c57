"""The servers the serving benchmark loads, and what they serve.

Each runs on a free loopback port in a session of its own until its block ends (:mod:`harness.servers`),
its log under the benchmark's ``logs`` folder, which is also its working directory (so it reads no
``.env`` of the project). What they serve is made here too: the champion (trained, gated and
promoted in the benchmark's own home unless one is there), its point-only copy, the floor's config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from core.dataset import DatasetConfig
from core.progress import logging_beside_progress
from core.settings import PROJECT_ROOT, OnlineStoreKind, Profile, Settings, child_environment
from harness import servers
from harness.net import free_port, http_ok, port_open
from harness.servers import exit_on_sigterm
from model_registry import tracking

log = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 180.0
REDIS_PASSWORD = "bench-serving"
POINT_ONLY_SUFFIX = "_point_only"  # the registered model that holds the champion's point-only copy


def bench_settings(home: Path, dataset_config: Path, redis_port: int) -> Settings:
    """Local-profile settings whose state all lives under ``home``, with the throwaway Redis online.

    Paths and URLs a user may have set (``MLOPS_*``, ``.env``) are overridden, so the benchmark never
    trains into, or promotes in, the user's own registry.
    """
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        profile=Profile.LOCAL,
        home=home,
        dataset_config=dataset_config.resolve(),
        landing_dir=None,
        artifacts_dir=None,
        feast_repo_dir=None,
        feast_registry=None,
        mlflow_tracking_uri=None,
        mlflow_registry_uri=None,
        optuna_storage=None,
        registered_model_name=None,
        pushgateway_url=None,
        online_store=OnlineStoreKind.REDIS,
        redis_host="127.0.0.1",
        redis_port=redis_port,
        redis_password=SecretStr(REDIS_PASSWORD),
        redis_ssl=False,
        promotion_lock="file",
    )


def running(
    name: str, argv: list[str], ready: Callable[[], bool], logs: Path, env: dict[str, str] | None = None
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """Run a server in its own session until the block ends (also on errors); wait until ``ready()``.

    Its working directory is its log folder, so it reads no ``.env`` of the project. At the end its
    process group gets SIGTERM, and SIGKILL after 20 s (servers fork workers).
    """
    logs.mkdir(parents=True, exist_ok=True)
    return servers.running(
        argv, ready, name=name, log=logs / f"{name}.log", cwd=logs, env=env,
        timeout=READY_TIMEOUT_SECONDS, interval=0.2, grace=20.0,
    )  # fmt: skip


def redis_server(port: int, logs: Path) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A throwaway ``redis-server`` on loopback, nothing saved to disk, behind ``REDIS_PASSWORD``."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--requirepass", REDIS_PASSWORD]
    return running("redis", argv, lambda: port_open(port), logs)


@contextlib.contextmanager
def our_service(settings: Settings, workers: int, logs: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m model_serving`` on a free loopback port until the block ends: (base URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_environment(settings, serving_host="127.0.0.1", serving_port=port, serving_workers=workers)
    argv = [sys.executable, "-m", "model_serving"]
    with running(f"ours-{workers}-workers", argv, lambda: http_ok(f"{base}/health/ready"), logs, env) as process:
        yield base, process


@contextlib.contextmanager
def floor_server(settings: Settings, config: Path, logs: Path) -> Iterator[str]:
    """:mod:`benchmarks.floor` under uvicorn as the service runs (one worker, no access log), with the
    key, fields and body of ``config`` (:func:`write_floor_config`); yields its base URL."""
    from benchmarks.floor import CONFIG_ENV, PASSWORD_ENV

    port = free_port()
    env = child_environment(settings)
    env.update({CONFIG_ENV: str(config), "PYTHONPATH": str(PROJECT_ROOT)})
    if settings.redis_password is not None:
        env[PASSWORD_ENV] = settings.redis_password.get_secret_value()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks.floor:app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    with running("floor", argv, lambda: port_open(port), logs, env):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def feast_server(settings: Settings, logs: Path) -> Iterator[str]:
    """Feast's feature server with its defaults, except ``--max-requests 0``; yields its base URL.

    Its default recycles the (single) gunicorn worker after about 1,000 requests; a new worker takes
    seconds to start, which would measure a restart instead of the fetch.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(Path(sys.executable).parent / "feast"), "-c", str(settings.feast_repo), "serve"]
    argv += ["-h", "127.0.0.1", "-p", str(port), "--max-requests", "0"]
    with running("feast-serve", argv, lambda: http_ok(f"{base}/health"), logs, child_environment(settings)):
        yield base


@contextlib.contextmanager
def mlflow_server(settings: Settings, dataset: DatasetConfig, version: str, logs: Path) -> Iterator[str]:
    """MLflow's scoring server of ``version`` of the dataset's registered model; yields its base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    uri = f"models:/{settings.model_name(dataset.name)}/{version}"
    argv = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local"]
    argv += ["-h", "127.0.0.1", "-p", str(port)]
    env = child_environment(settings)
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    env["MLFLOW_REGISTRY_URI"] = settings.mlflow_registry_uri or settings.tracking_uri
    with running("mlflow-models-serve", argv, lambda: http_ok(f"{base}/ping"), logs, env):
        yield base


def load_online_store(settings: Settings, dataset: DatasetConfig, end: datetime) -> None:
    """Apply the Feast definitions and load ``[end - ttl, end)`` into the online store.

    Not :func:`feature_store.repo.materialize`: the Feast registry in the home remembers the last
    load, so on a rerun it would load nothing, while this run's Redis starts empty. Each series'
    history is loaded too: a per-series champion (a statistical family, a selection) forecasts from it.
    """
    from feature_store.repo import apply, feature_view_name, history_view_name

    store = apply(settings, dataset)
    ttl = dataset.feature_engineering.ttl or timedelta(days=7)
    views = [feature_view_name(dataset), history_view_name(dataset)]
    store.materialize(start_date=end - ttl, end_date=end, feature_views=views)


def prepare(
    settings: Settings, dataset: DatasetConfig, logical_date: date, retrain: bool = False, family: str = "xgboost"
) -> str:
    """Features in the online store and a champion of ``family`` in the registry; returns the champion's
    version.

    The same library calls as the pipeline: ingest, validate, features, Feast, train, register,
    the champion/challenger gate, promotion. They run only when the home has no champion of that
    family yet, or with ``retrain``: a bundle carries its own copy of the training code, so a changed
    preprocessor or model family is only served by a newly trained version.
    """
    from core.windows import end_of
    from data_pipeline.ingest import ingest
    from data_pipeline.validation import validate
    from feature_store.build import write_offline_source
    from model_registry.promotion import promote_version
    from model_registry.registry import champion_version, register_challenger
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    name = settings.model_name(dataset.name)
    version = None if retrain else champion_version(settings, name)
    if version is not None and tracking.client(settings).get_model_version(name, version).tags.get("family") != family:
        version = None
    if version is not None and not _loadable(settings, name, version):
        version = None
    if version is None:
        ingest(dataset, logical_date, settings)
        validate(dataset, logical_date, settings)
        write_offline_source(settings, dataset, logical_date)
    load_online_store(settings, dataset, end_of(logical_date))
    if version is not None:
        log.info("%s v%s is already champion in %s: not retraining", name, version, settings.home)
        return version
    outcome = train(settings, dataset, logical_date, family=family)
    version = register_challenger(settings, name, outcome.run_id).version
    decision = evaluate_challenger(settings, dataset, name, version, holdout_of(settings, dataset, logical_date))
    if not decision.passed:
        raise RuntimeError(f"{name} v{version} failed the champion/challenger gate: {decision.reason}")
    promote_version(settings, name, version, f"serving benchmark: {decision.reason}")
    return version


def _loadable(settings: Settings, name: str, version: str) -> bool:
    """Whether the service would load this champion with its bands: a home made by older code may hold
    one it refuses (no bundle digest), cannot load (a bundle of an older layout) or serves without
    bands; then the benchmark trains anew."""
    from model_registry.provenance import trusted_model
    from model_registry.registry import warm

    try:
        with trusted_model(settings, name, version) as model:
            warm(model, f"{name} v{version}")
            calibrated = getattr(model.unwrap_python_model(), "calibration", None) is not None
    except Exception as exc:  # whatever keeps the service from loading it
        log.warning("%s v%s will not be served (%s): training a new champion", name, version, exc)
        return False
    if not calibrated:
        log.warning("%s v%s has no interval calibration (older code): training a new champion", name, version)
    return calibrated


def invocation_body(settings: Settings, dataset: DatasetConfig, version: str, entity: str) -> dict[str, Any]:
    """The entity's online feature row as MLflow's scoring server takes it, in the bundle's column order."""
    import mlflow

    from feature_store.repo import feature_service_name, get_store
    from model_bundle.outputs import feature_inputs

    info = mlflow.models.get_model_info(f"models:/{settings.model_name(dataset.name)}/{version}")
    assert info.signature is not None
    columns = feature_inputs(info.signature.inputs)
    store = get_store(settings)
    service = store.get_feature_service(feature_service_name(dataset))
    values = store.get_online_features(features=service, entity_rows=[{dataset.entity_column: entity}]).to_dict()
    return {"dataframe_split": {"columns": columns, "data": [[values[c][0] for c in columns]]}}


def register_point_only(settings: Settings, name: str, version: str, target: str | None = None) -> str:
    """``version`` of ``name`` registered again as a version made before bundles carried intervals:
    the same files without the calibration file and without the entity column in the bundle's
    metadata, under ``target`` (default: ``name``); returns the new version."""
    import shutil

    from model_registry.provenance import BUNDLE_DIGEST_TAG, bundle_digest, discard, fetch

    registry = tracking.client(settings)
    source = registry.get_model_version(name, version)
    target = target or name
    copy = settings.home / "mlartifacts" / "point_only" / f"{name}-v{version}-{time.time_ns()}"
    files = fetch(settings, registry.get_model_version_download_uri(name, version))
    shutil.copytree(files, copy)
    discard(files)
    for calibration in copy.rglob("intervals.json"):
        meta_file = calibration.parent / "bundle.json"
        meta = json.loads(meta_file.read_text())
        meta.pop("entity_column", None)
        meta_file.write_text(json.dumps(meta))
        calibration.unlink()
    if target != name and not registry.search_registered_models(filter_string=f"name = {tracking.literal(target)}"):
        registry.create_registered_model(target)
    tags = {BUNDLE_DIGEST_TAG: bundle_digest(copy)}
    return str(registry.create_model_version(target, str(copy), run_id=source.run_id, tags=tags).version)


def point_only_champion(settings: Settings, dataset: DatasetConfig, version: str) -> Settings:
    """Settings whose registered model's champion is the point-only copy of ``version`` (made once)."""
    name = settings.model_name(dataset.name)
    target = f"{name}{POINT_ONLY_SUFFIX}"
    registry = tracking.client(settings)
    try:
        current = registry.get_model_version_by_alias(target, tracking.CHAMPION)
        fresh = current.tags.get("copy_of") != version
    except Exception:  # no such model or alias yet
        fresh = True
    if fresh:
        copy = register_point_only(settings, name, version, target)
        registry.set_model_version_tag(target, copy, "copy_of", version)
        registry.set_registered_model_alias(target, tracking.CHAMPION, copy)
    return settings.model_copy(update={"registered_model_name": target})


def floor_body(dataset: DatasetConfig, version: str, entity: str) -> bytes:
    """A forecast answer of the service's shape and size for ``entity`` (the floor answers it as is)."""
    from model_serving.schemas import Forecast, ForecastPoint

    now = datetime.now(UTC)
    points = [
        ForecastPoint(timestamp=target, value=1.0 + h / 7)
        for h, target in enumerate(dataset.frequency.ahead(now, dataset.horizon))
    ]
    forecast = Forecast(
        entity_id=entity,
        model_name=f"{dataset.name}_forecaster",
        model_version=version,
        feature_event_time=now,
        feature_age_seconds=1.0,
        stale=False,
        forecast=points,
    )
    return forecast.model_dump_json().encode()


def write_floor_config(settings: Settings, dataset: DatasetConfig, version: str, entity: str, logs: Path) -> Path:
    """What the floor answers with: the Redis key and fields the service reads for ``entity``, and a body."""
    from benchmarks.floor import write_config
    from feature_store.repo import get_store
    from model_serving.online_features import RedisReader

    reader = RedisReader(settings, dataset, get_store(settings))
    [key] = reader._keys([entity])
    fields = [field for view in reader.views for field in view.hash_keys]
    body = floor_body(dataset, version, entity)
    return write_config(logs / "floor.json", settings.redis_host, settings.redis_port, key, fields, body)


@dataclass(frozen=True)
class Bench:
    """What a serving benchmark runs against: its settings, the dataset, the champion, its logs folder."""

    settings: Settings
    dataset: DatasetConfig
    version: str
    logs: Path


@contextlib.contextmanager
def bench_stack(
    home: Path, dataset_config: Path, logical_date: date, retrain: bool, family: str = "xgboost"
) -> Iterator[Bench]:
    """The start every serving benchmark shares: SIGTERM unwinds like an error (so every server started
    here is stopped), settings under ``home`` with a throwaway Redis online, MLflow pointed at them,
    features online and a champion registered (:func:`prepare`); log lines print above progress bars."""
    exit_on_sigterm()
    dataset = DatasetConfig.from_yaml(dataset_config)
    logs = home.resolve() / "logs"
    redis_port = free_port()
    settings = bench_settings(home, dataset_config, redis_port)
    tracking.configure(settings)
    with redis_server(redis_port, logs), logging_beside_progress():
        yield Bench(settings, dataset, prepare(settings, dataset, logical_date, retrain, family), logs)
