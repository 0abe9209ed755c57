"""The platform's one settings object.

Every path, URL and credential the platform uses is read here, from environment variables with the
``MLOPS_`` prefix (or a ``.env`` file). A *profile* fills in the defaults for a kind of deployment, so
a user changes one variable to move from the embedded local setup to the compose stack:

* ``local``: everything lives under one home folder (``.mlops/``): SQLite MLflow tracking with local
  artifacts, a Feast file offline store with a SQLite online store and a file registry, and a local
  landing folder. No server is needed.
* ``compose``: the docker-compose services: Postgres, Redis, MinIO (S3) and the MLflow server.
* ``k8s``: the same services addressed by their in-cluster names.

Explicitly set variables always win over the profile's defaults.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.api_limits import largest_request_bytes

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Profile(StrEnum):
    LOCAL = "local"
    COMPOSE = "compose"
    K8S = "k8s"


class OnlineStoreKind(StrEnum):
    SQLITE = "sqlite"
    REDIS = "redis"


class TrainingExecutor(StrEnum):
    LOCAL = "local"  # the training CLI in a subprocess of the Airflow worker
    KUBERNETES = "kubernetes"  # the same CLI in a pod on the GPU node pool


# Service addresses of the non-embedded profiles. Only these tables name hosts.
_SERVICE_HOSTS: dict[Profile, dict[str, str]] = {
    Profile.COMPOSE: {
        "mlflow": "http://mlflow:5000",
        "redis": "redis",
        "s3": "http://minio:9000",
        "postgres": "postgres",
        "pushgateway": "http://pushgateway:9091",
        "ray": "ray://ray-head:10001",
    },
    Profile.K8S: {
        "mlflow": "http://mlflow.mlops.svc.cluster.local:5000",
        "redis": "redis.mlops.svc.cluster.local",
        "s3": "",
        "postgres": "postgres.mlops.svc.cluster.local",
        "pushgateway": "http://pushgateway.mlops.svc.cluster.local:9091",
        # Ray Client of the RayCluster in infra/k8s/ray/ (KubeRay names its head's service <name>-head-svc).
        "ray": "ray://mlops-ray-head-svc.mlops.svc.cluster.local:10001",
    },
}


class Settings(BaseSettings):
    """Typed settings; ``Settings()`` reads the environment, tests pass values directly."""

    model_config = SettingsConfigDict(env_prefix="MLOPS_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    profile: Profile = Profile.LOCAL
    home: Path = Field(default=Path(".mlops"), description="Root of all local state.")
    dataset_config: Path = Field(
        default=PROJECT_ROOT / "configs" / "datasets" / "ett.yaml",
        description="The dataset YAML the commands run on when none is given.",
    )
    datasets_dir: Path = Field(
        default=PROJECT_ROOT / "configs" / "datasets",
        description="Every YAML file here gets its own set of DAGs.",
    )

    # Raw data landing area (a local folder; partitions by logical date).
    landing_dir: Path | None = None
    artifacts_dir: Path | None = None

    # Where tasks and training pods hand files to each other (training set, holdout, parameters, the
    # dataset config): unset, the local artifacts folder; an s3:// prefix where they share no filesystem.
    exchange_uri: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="s3://bucket[/prefix] of the runs' hand-overs between tasks and pods (compose and k8s "
        "profiles: s3://runs); unset: local files under the artifacts folder.",
    )

    # Where the data every task reads lives (landing and validated partitions, the data checks'
    # results, the feature table): unset, folders under home; an s3:// prefix where tasks run in
    # separate pods (Airflow's KubernetesExecutor, Celery workers on several machines).
    lake_uri: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
        description="s3://bucket[/prefix] of the partitions, data-check results and feature table that tasks "
        "hand to each other (compose and k8s profiles: s3://lake); unset: folders under home.",
    )

    # S3 / MinIO for s3:// sources and hand-overs.
    s3_endpoint_url: str | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_region: str = "us-east-1"
    s3_max_attempts: int = Field(
        default=5, ge=1, description="Attempts per S3 read (botocore standard retries, with backoff) before failing."
    )

    # MLflow.
    mlflow_tracking_uri: str | None = None
    mlflow_registry_uri: str | None = None
    mlflow_tracking_username: str | None = Field(
        default=None, description="Login of a tracking server with basic auth (the compose stack's MLflow has it)."
    )
    mlflow_tracking_password: SecretStr | None = None
    mlflow_experiment: str = "forecasting"
    registered_model_name: str | None = Field(default=None, description="Defaults to '<dataset name>_forecaster'.")

    # Feast.
    feast_project: str = "mlops"
    feast_repo_dir: Path | None = None
    feast_registry: str | None = None
    online_store: OnlineStoreKind | None = None
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_password: SecretStr | None = None
    redis_ssl: bool = False
    redis_max_connections: int = Field(default=32, ge=1, description="Pool size of the service's Redis client.")
    redis_timeout_seconds: float = Field(default=0.5, gt=0, description="Connect and read timeout of a Redis call.")

    # Optuna study storage (an RDB URL shared by all tuning workers); default SQLite under home.
    optuna_storage: str | None = None
    forecast_db: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the forecast table (forecasts issued, later scored): SQLite under home by "
        "default, PostgreSQL in the compose and k8s profiles.",
    )
    # Where models train: auto takes a visible CUDA device, else the CPU.
    training_device: Literal["auto", "cpu", "cuda"] = "auto"
    engine: Literal["local", "ray"] = Field(
        default="local",
        description="Where per-series work runs (the statistical families' fits, the feature build, the batch "
        "forecast's predictions, the scoring): in the task's own process, or as tasks of the Ray cluster at "
        "ray_address.",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster of engine=ray: ray://host:port (Ray Client, from outside the cluster: the "
        "compose and k8s profiles' default), or host:port of the head's GCS from one of its nodes; None: Ray's "
        "own RAY_ADDRESS, else a cluster started on this machine with `ray start`.",
    )

    # Prometheus Pushgateway for batch jobs' figures; None: figures are logged, not pushed.
    pushgateway_url: str | None = None

    # Serialises alias moves of the registry (promotion, rollback) across processes: a file lock
    # where everything runs on one machine, a Redis lock where workers and pods share a cluster.
    promotion_lock: Literal["file", "redis"] = "file"
    promotion_lock_timeout_seconds: float = Field(default=60.0, gt=0)
    task_retry_delay_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Airflow's wait before a failed I/O task's first retry (doubled on each later one, at most "
        "10 minutes): long enough for a restarted server or a late file to come back.",
    )

    # Where training runs, and the pod it runs in on Kubernetes.
    training_executor: TrainingExecutor = TrainingExecutor.LOCAL
    k8s_namespace: str = "mlops"
    training_image: str = "ghcr.io/mlops-platform/training:latest"
    training_service_account: str = "mlops-training"
    training_cpu: str = "4"
    training_memory: str = "16Gi"
    training_gpus: int = 1
    gpu_node_pool_label: str = "cloud.google.com/gke-nodepool"
    gpu_node_pool: str = "gpu-pool"
    gpu_taint_key: str = "nvidia.com/gpu"
    training_secret: str = Field(
        default="mlops-training-env", description="Kubernetes secret whose keys become the pod's env."
    )
    training_startup_timeout_seconds: int = 600
    training_kube_config: Path | None = None

    # Serving.
    serving_host: str = "127.0.0.1"
    serving_port: int = 8000
    forecast_ledger: bool = Field(
        default=True,
        description="The service records each forecast it answers in the forecast table (source 'online'), off "
        "the request path.",
    )
    forecast_ledger_spool: Path | None = Field(
        default=None,
        description="Local folder of the ledger's spool, where answered forecasts wait for the forecast table "
        "(default: <home>/ledger-spool). Keep it on a volume that outlives the service's container.",
    )
    forecast_ledger_spool_mb: int = Field(
        default=1024,
        ge=1,
        description="Spooled forecasts not yet in the table, in MiB, past which new ones are dropped and counted "
        '(forecast_ledger_dropped_total{reason="spool_full"}), never waited for.',
    )
    max_batch_entities: int = Field(
        default=100,
        ge=1,
        description="Entities per /v1/forecast/batch request, and per batch of concurrent requests computed together.",
    )
    inference_threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads per worker for the model libraries (OMP_NUM_THREADS); None: OMP_NUM_THREADS "
        "if set, else 1 (a request predicts a few rows: more cores serve through more workers).",
    )
    serving_metrics_dir: Path | None = Field(
        default=None,
        description="With several workers: the directory their Prometheus values share (emptied at start); "
        "None: a temporary one.",
    )
    serving_access_log: bool = Field(
        default=False,
        description="uvicorn's line per request; off by default: the latency histogram counts every request.",
    )
    model_poll_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How often the service checks the registry's champion alias for a new version; 0: never.",
    )
    serving_workers: int = Field(
        default=1,
        ge=1,
        description="uvicorn worker processes of the service; each loads its own model and feature store client.",
    )
    online_read_path: Literal["auto", "feast", "redis"] = Field(
        default="auto",
        description="How the service reads online features: Feast's get_online_features, or one pipelined "
        "Redis round trip of the same keys (auto: redis when the online store is Redis).",
    )
    stale_features: Literal["serve", "refuse"] = Field(
        default="serve",
        description="Features older than the feature view's TTL: serve them flagged stale, or answer 503.",
    )
    registry_request_retries: int = Field(
        default=2, ge=0, description="MLflow client retries per registry call of the service (it retries on its own)."
    )
    registry_request_timeout_seconds: float = Field(default=10.0, gt=0, description="Per registry HTTP call.")
    admin_token: SecretStr | None = Field(default=None, description="Bearer token of /admin routes; None: disabled.")
    max_request_bytes: int | None = Field(
        default=None,
        description="Larger request bodies get 413; None: the largest body the API's schema allows with "
        "max_batch_entities (request_body_limit). A smaller value is refused: it would turn valid requests away.",
    )

    # Untrusted input: where dataset sources and model bundles may be read from (core.source_policy,
    # model_registry.provenance).
    source_schemes: list[Literal["file", "s3"]] = Field(
        default=["file", "s3"], description="Schemes a dataset source may use ('file': local paths and file:///)."
    )
    source_buckets: list[str] = Field(
        default_factory=list,
        description="S3 buckets a dataset source may name; empty: none, every s3:// source is refused "
        "(the platform's credentials also reach the MLflow bucket). The compose profile lists its 'raw' bucket.",
    )
    source_roots: list[Path] | None = Field(
        default=None,
        description="Folders a local source must lie under once symlinks and '..' are resolved; None: the "
        "project's data/ folder, datasets_dir and the folder of dataset_config.",
    )
    model_artifact_roots: list[str] | None = Field(
        default=None,
        description="URI prefixes a model version's files may be loaded from; None: <home>/mlartifacts, plus "
        "the tracking server's own mlflow-artifacts: store when tracking is an HTTP server.",
    )

    @model_validator(mode="before")
    @classmethod
    def _profile_defaults(cls, data: Any) -> Any:
        """Fill service addresses of the chosen profile where the user set none."""
        if not isinstance(data, dict):
            return data
        profile = Profile(data.get("profile", Profile.LOCAL))
        hosts = _SERVICE_HOSTS.get(profile)
        if hosts is None:
            return data
        defaults: dict[str, Any] = {
            "mlflow_tracking_uri": hosts["mlflow"],
            "online_store": OnlineStoreKind.REDIS,
            "redis_host": hosts["redis"],
            "optuna_storage": f"postgresql+psycopg://optuna@{hosts['postgres']}:5432/optuna",
            "forecast_db": f"postgresql+psycopg://forecasts@{hosts['postgres']}:5432/forecasts",
            "pushgateway_url": hosts["pushgateway"],
            "promotion_lock": "redis",
            "exchange_uri": "s3://runs",  # no filesystem is shared between tasks and pods
            "lake_uri": "s3://lake",
            "engine": "ray",  # the per-series work on the profile's Ray cluster
            "ray_address": hosts["ray"],
        }
        if hosts["s3"]:
            defaults["s3_endpoint_url"] = hosts["s3"]
        if profile is Profile.COMPOSE:
            defaults["source_buckets"] = ["raw"]  # the raw-data bucket the compose file creates
        return {**defaults, **data}

    @model_validator(mode="after")
    def _local_defaults(self) -> Settings:
        """Put every unset local path under ``home`` (made absolute so subprocesses agree)."""
        self.home = self.home.expanduser().resolve()
        if self.landing_dir is None:
            self.landing_dir = self.home / "landing"
        if self.artifacts_dir is None:
            self.artifacts_dir = self.home / "artifacts"
        if self.feast_repo_dir is None:
            self.feast_repo_dir = self.home / "feature_repo"
        if self.feast_registry is None:
            self.feast_registry = str(self.feast_repo_dir / "registry.db")
        if self.mlflow_tracking_uri is None:
            self.mlflow_tracking_uri = f"sqlite:///{self.home / 'mlflow.db'}"
        if self.online_store is None:
            self.online_store = OnlineStoreKind.SQLITE
        if self.optuna_storage is None:
            self.optuna_storage = f"sqlite:///{self.home / 'optuna.db'}"
        if self.forecast_db is None:
            self.forecast_db = f"sqlite:///{self.home / 'forecasts.db'}"
        return self

    @model_validator(mode="after")
    def _body_limit_admits_every_valid_request(self) -> Settings:
        """Refuse a byte limit below the largest request the API's schema allows: the service would
        answer 413 to requests its own published schema calls valid, and clients could not tell why."""
        if self.max_request_bytes is None:
            return self  # derived when read (request_body_limit)
        needed = largest_request_bytes(self.max_batch_entities)
        if self.max_request_bytes < needed:
            raise ValueError(
                f"MLOPS_MAX_REQUEST_BYTES={self.max_request_bytes} is below {needed} bytes, the largest valid "
                f"request with MLOPS_MAX_BATCH_ENTITIES={self.max_batch_entities}: set MLOPS_MAX_REQUEST_BYTES "
                f"to at least {needed}, leave it unset (derived from MLOPS_MAX_BATCH_ENTITIES), "
                "or lower MLOPS_MAX_BATCH_ENTITIES"
            )
        return self

    # Typed accessors: after validation these are never None.
    @property
    def landing(self) -> Path:
        assert self.landing_dir is not None
        return self.landing_dir

    @property
    def artifacts(self) -> Path:
        assert self.artifacts_dir is not None
        return self.artifacts_dir

    @property
    def feast_repo(self) -> Path:
        assert self.feast_repo_dir is not None
        return self.feast_repo_dir

    @property
    def study_storage(self) -> str:
        assert self.optuna_storage is not None
        return self.optuna_storage

    @property
    def forecast_store_url(self) -> str:
        assert self.forecast_db is not None
        return self.forecast_db

    @property
    def request_body_limit(self) -> int:
        """The byte limit of request bodies the service enforces: ``max_request_bytes`` when set, else the
        largest request body the schema allows with ``max_batch_entities`` (so the default never refuses
        a valid request, whatever the batch limit)."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return largest_request_bytes(self.max_batch_entities)

    @property
    def tracking_uri(self) -> str:
        assert self.mlflow_tracking_uri is not None
        return self.mlflow_tracking_uri

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Where a new experiment stores artifacts: under ``home`` when the platform talks to the
        backend database itself (SQLite or PostgreSQL: MLflow's own default would be ``./mlruns`` of
        whatever directory the process runs in); None when a tracking server decides."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.home / "mlartifacts").as_uri()

    @property
    def allowed_source_roots(self) -> list[Path]:
        """``source_roots``, or where the platform's own datasets live when none are set."""
        if self.source_roots is not None:
            return list(self.source_roots)
        return [PROJECT_ROOT / "data", self.datasets_dir, self.dataset_config.parent]

    @property
    def allowed_model_roots(self) -> list[str]:
        """``model_artifact_roots``, or the artifact store of the configured registry when none are set."""
        if self.model_artifact_roots is not None:
            return list(self.model_artifact_roots)
        roots = [(self.home / "mlartifacts").as_uri()]
        if self.tracking_uri.startswith(("http://", "https://")):
            roots.append("mlflow-artifacts:")
        return roots

    def secret_values(self) -> list[str]:
        """Every credential these settings hold: the secret fields, and passwords inside URLs
        (database, registry and storage URLs carry theirs). Task logs mask them."""
        values = [
            value.get_secret_value()
            for value in (getattr(self, name) for name in type(self).model_fields)
            if isinstance(value, SecretStr)
        ]
        urls = (
            self.mlflow_tracking_uri,
            self.mlflow_registry_uri,
            self.optuna_storage,
            self.feast_registry,
            self.forecast_db,
        )
        for url in urls:
            if url and "://" in url and (password := urlsplit(url).password):
                values.append(unquote(password))
        return [value for value in values if value]

    def model_name(self, dataset_name: str) -> str:
        return self.registered_model_name or f"{dataset_name}_forecaster"

    def redis_connection_string(self, password_as: str | None = None) -> str:
        """Feast's Redis connection string: ``host:port[,password=...][,ssl=true]``; ``password_as``
        stands in for the password (a variable that a written file names instead of the value)."""
        parts = [f"{self.redis_host}:{self.redis_port}"]
        if self.redis_password is not None:
            parts.append(f"password={password_as or self.redis_password.get_secret_value()}")
        if self.redis_ssl:
            parts.append("ssl=true")
        return ",".join(parts)

    def as_environment(self, **overrides: Any) -> dict[str, str]:
        """These settings (and ``overrides``) as the ``MLOPS_*`` variables from which ``Settings()`` reads
        them back: how a child process (a server, a training subprocess) gets the same settings.

        Secrets go in clear, so this is for a child's environment only, never for a file or a log.
        Lists and mappings go as JSON, the one form pydantic-settings reads them back from.
        """
        env: dict[str, str] = {}
        for name, value in {**self.model_dump(), **overrides}.items():
            if value is None:
                continue
            if isinstance(value, SecretStr):
                text = value.get_secret_value()
            elif isinstance(value, list | tuple | set | dict):
                text = json.dumps(list(value) if isinstance(value, set) else value, default=str)
            else:
                text = str(value)
            env[f"MLOPS_{name.upper()}"] = text
        return env

    def boto3_client_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"region_name": self.aws_region}
        if self.s3_endpoint_url:
            kwargs["endpoint_url"] = self.s3_endpoint_url
        if self.aws_access_key_id is not None:
            kwargs["aws_access_key_id"] = self.aws_access_key_id.get_secret_value()
        if self.aws_secret_access_key is not None:
            kwargs["aws_secret_access_key"] = self.aws_secret_access_key.get_secret_value()
        return kwargs


def child_environment(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The environment of a child process of this interpreter whose ``Settings()`` equals ``settings``
    (plus ``overrides``): this process's environment without its own ``MLOPS_*`` variables (nor the
    MLflow URIs configured from them), and the interpreter's ``bin`` first on PATH, so that commands
    of the same virtualenv (``uvicorn``, ``feast``, ``mlflow``) are found by name."""
    own = ("MLOPS_", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")  # the child derives these from its settings
    env = {key: value for key, value in os.environ.items() if not key.startswith(own)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **settings.as_environment(**overrides)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
