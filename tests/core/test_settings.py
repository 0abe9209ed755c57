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


def test_a_database_tracking_uri_keeps_artifacts_under_home(tmp_path: Path) -> None:
    # MLflow's default artifact root for a database backend is ./mlruns of the working directory:
    # tasks, pods and the service would each write (and look) somewhere else.
    url = "postgresql+psycopg://mlops@127.0.0.1:5432/mlflow"
    settings = Settings(home=tmp_path, mlflow_tracking_uri=url, _env_file=None)  # type: ignore[call-arg]
    assert settings.mlflow_artifact_root == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert settings.mlflow_artifact_root in settings.allowed_model_roots


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


def test_the_body_limit_is_derived_from_the_batch_limit_unless_set() -> None:
    from core.api_limits import largest_request_bytes

    derived = Settings(max_batch_entities=5, _env_file=None)  # type: ignore[call-arg]
    assert derived.max_request_bytes is None
    assert derived.request_body_limit == largest_request_bytes(5)
    # A bigger batch limit moves the derived byte limit with it.
    assert Settings(_env_file=None).request_body_limit == largest_request_bytes(100)  # type: ignore[call-arg]
    assert largest_request_bytes(100) > largest_request_bytes(5)
    exact = Settings(max_batch_entities=5, max_request_bytes=largest_request_bytes(5), _env_file=None)  # type: ignore[call-arg]
    assert exact.request_body_limit == largest_request_bytes(5)
    roomier = Settings(max_batch_entities=5, max_request_bytes=10**6, _env_file=None)  # type: ignore[call-arg]
    assert roomier.request_body_limit == 10**6


def test_a_body_limit_below_the_largest_valid_request_is_refused_naming_both_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from core.api_limits import largest_request_bytes

    needed = largest_request_bytes(5)
    expected = (
        f"MLOPS_MAX_REQUEST_BYTES={needed - 1} is below {needed} bytes, the largest valid request with "
        "MLOPS_MAX_BATCH_ENTITIES=5"
    )
    with pytest.raises(ValidationError, match=expected):
        Settings(max_batch_entities=5, max_request_bytes=needed - 1, _env_file=None)  # type: ignore[call-arg]
    # The same from the environment, as a deployment sets it.
    monkeypatch.setenv("MLOPS_MAX_BATCH_ENTITIES", "5")
    monkeypatch.setenv("MLOPS_MAX_REQUEST_BYTES", "2048")
    with pytest.raises(ValidationError, match=f"MLOPS_MAX_REQUEST_BYTES=2048 is below {needed} bytes"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_worst_case_body_is_every_id_at_full_length_escaped_to_twelve_bytes_a_character() -> None:
    """Measured by serializing, checked here against the escaping it relies on: ``json.dumps`` (and
    ``requests``) write a character outside the BMP as a surrogate pair of ``\\uXXXX`` escapes."""
    import json

    from core.api_limits import ENTITY_ID_MAX_CHARS, largest_request_bytes, worst_case_bodies

    single, batch = worst_case_bodies(3)
    assert len(batch["entity_ids"]) == 3
    assert all(len(entity) == ENTITY_ID_MAX_CHARS for entity in [single["entity_id"], *batch["entity_ids"]])
    assert len(json.dumps(single["entity_id"])) == 2 + 12 * ENTITY_ID_MAX_CHARS
    assert largest_request_bytes(3) == len(json.dumps(batch).encode())
    assert largest_request_bytes(3) > len(json.dumps(batch, ensure_ascii=False).encode())  # UTF-8: 4 bytes each
