import os
from pathlib import Path

import pytest

from core.settings import OnlineStoreKind, Profile, Settings


def test_local_profile_keeps_everything_under_home(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "h", _env_file=None)  # type: ignore[call-arg]
    home = (tmp_path / "h").resolve()
    assert settings.profile is Profile.LOCAL
    assert settings.landing == home / "landing"
    assert settings.feast_repo == home / "feature_repo"
    assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    assert settings.online_store is OnlineStoreKind.SQLITE
    assert settings.mlflow_artifact_root == (home / "mlartifacts").as_uri()


def test_compose_profile_points_at_services(tmp_path: Path) -> None:
    settings = Settings(profile="compose", home=tmp_path, _env_file=None)  # type: ignore[call-arg]
    assert settings.tracking_uri == "http://mlflow:5000"
    assert settings.online_store is OnlineStoreKind.REDIS
    assert settings.redis_host == "redis"
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.mlflow_artifact_root is None


def test_environment_overrides_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLOPS_PROFILE", "compose")
    monkeypatch.setenv("MLOPS_REDIS_HOST", "cache.internal")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.profile is Profile.COMPOSE
    assert settings.redis_host == "cache.internal"
    assert settings.home == tmp_path.resolve()


def test_redis_connection_string_carries_password_but_repr_hides_it() -> None:
    settings = Settings(redis_host="r", redis_port=7000, redis_password="s3cret", _env_file=None)  # type: ignore[call-arg]
    assert settings.redis_connection_string() == "r:7000,password=s3cret"
    assert "s3cret" not in repr(settings)


def test_model_name_defaults_to_dataset_name() -> None:
    assert Settings(_env_file=None).model_name("ett") == "ett_forecaster"  # type: ignore[call-arg]
    named = Settings(registered_model_name="custom", _env_file=None)  # type: ignore[call-arg]
    assert named.model_name("ett") == "custom"


def test_secret_values_are_the_secret_fields_and_passwords_inside_urls() -> None:
    settings = Settings(
        redis_password="redis-pw",
        admin_token="token",
        mlflow_tracking_password="mlflow-pw",
        optuna_storage="postgresql+psycopg://optuna:optuna%40pw@db:5432/optuna",
        feast_registry="postgresql+psycopg://feast@db:5432/feast",  # no password, nothing to mask
        _env_file=None,  # type: ignore[call-arg]
    )
    assert sorted(settings.secret_values()) == sorted(["redis-pw", "token", "mlflow-pw", "optuna@pw"])


def test_child_processes_see_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import SecretStr

    from core.settings import child_environment

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path / "home", redis_password=SecretStr("pw"), source_buckets=["raw"]
    )
    monkeypatch.setenv("MLOPS_SERVING_PORT", "1")  # the parent's own: never the child's
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    env = child_environment(settings, serving_port=9999, serving_workers=2)
    assert "MLFLOW_TRACKING_URI" not in env
    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    child = Settings(_env_file=None)  # type: ignore[call-arg]
    assert child.model_dump() == {**settings.model_dump(), "serving_port": 9999, "serving_workers": 2}
    assert child.redis_connection_string() == settings.redis_connection_string()
