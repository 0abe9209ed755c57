"""docker-compose.yml, checked without a Docker engine: valid against the Compose specification's
JSON schema, every image built from a Dockerfile of this repository whose sources exist, every module
and Airflow command it starts real, every setting it passes one that the settings or Airflow read,
and no secret written into it."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from importlib import resources
from importlib.util import find_spec
from typing import Any

import jsonschema
import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings
from tests.utils.images import dockerfile_sources

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?[?-][^}]*)?\}")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|ACCESS_KEY")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    schema = json.loads(schema_text)
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_every_built_image_comes_from_a_dockerfile_of_the_repo_whose_sources_exist(
    services: dict[str, dict[str, Any]],
) -> None:
    built = {name: s["build"] for name, s in services.items() if "build" in s}
    assert {"serving", "mlflow", "airflow-apiserver", "airflow-scheduler"} <= set(built)
    for name, build in built.items():
        context = (PROJECT_ROOT / build["context"]).resolve()
        assert context == PROJECT_ROOT, name
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        for source in dockerfile_sources(dockerfile):
            assert (context / source).exists(), f"{name}: {dockerfile.name} copies {source}, which does not exist"


def test_every_dockerfile_starts_a_module_that_exists() -> None:
    dockerfiles = sorted((PROJECT_ROOT / "infra" / "docker").glob("*.Dockerfile"))
    assert {d.stem for d in dockerfiles} == {"airflow", "mlflow", "serving", "training"}
    started = []
    for dockerfile in dockerfiles:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("ENTRYPOINT"):
                argv = json.loads(line.removeprefix("ENTRYPOINT"))
                if argv[:2] == ["python", "-m"]:
                    started.append(argv[2])
    assert sorted(started) == ["model_serving", "model_training"]
    assert all(find_spec(module) is not None for module in started)


def test_every_airflow_command_is_one_the_airflow_cli_has(services: dict[str, dict[str, Any]]) -> None:
    from airflow.cli.cli_parser import get_parser

    subcommands = next(a for a in get_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    checked = 0
    for name, service in services.items():
        if not name.startswith("airflow-"):
            continue
        command = service["command"]
        argv = shlex.split(command[-1]) if command[0] == "bash" else command
        argv = argv[1:] if argv[0] == "airflow" else argv
        assert argv[0] in subcommands, f"{name}: airflow {argv[0]}"
        test = service.get("healthcheck", {}).get("test", [])
        if "airflow" in test:
            assert test[test.index("airflow") + 1] in subcommands
        checked += 1
    assert checked == 5  # init, api-server, scheduler, dag-processor, triggerer


def test_every_setting_it_passes_is_read_by_the_settings_or_by_airflow(services: dict[str, dict[str, Any]]) -> None:
    from airflow.configuration import conf

    fields = {f"MLOPS_{name.upper()}" for name in Settings.model_fields}
    airflow_options = conf.configuration_description
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("MLOPS_"):
                assert key in fields, f"{name}: {key} is not a setting"
            elif key.startswith("AIRFLOW__"):
                section, option = key.removeprefix("AIRFLOW__").lower().split("__", 1)
                assert option in airflow_options.get(section, {}).get("options", {}), f"{name}: {key}"


def test_no_secret_is_written_into_the_file_and_every_variable_is_in_the_env_example(
    services: dict[str, dict[str, Any]],
) -> None:
    text = COMPOSE_FILE.read_text()
    example = (PROJECT_ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    used = set(INTERPOLATION.findall(text))
    assert used, "the file interpolates nothing from .env"
    assert used <= documented, used - documented
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and not key.endswith("_FILE"):  # a path to a secrets file is no secret
                assert INTERPOLATION.search(value), f"{name}: {key} is written into the file"
    # Interpolations that must be set fail loudly instead of starting with an empty password.
    for match in re.finditer(r"\$\{([A-Z0-9_]+)([^}]*)\}", text):
        if SECRET_NAME.search(match.group(1)):
            assert match.group(2).startswith(":?"), match.group(0)


def test_dependencies_exist_and_wait_for_health_where_there_is_a_healthcheck(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            if "healthcheck" in services[target]:
                assert rule["condition"] == "service_healthy", f"{name} -> {target}"
            elif services[target].get("restart") == "no":
                assert rule["condition"] == "service_completed_successfully", f"{name} -> {target}"


def test_mounted_files_exist_and_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (PROJECT_ROOT / source).exists(), f"{name}: {source}"
            else:
                assert source in named, f"{name}: {source} is not a named volume"


def test_prometheus_scrapes_compose_services(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load((PROJECT_ROOT / "monitoring" / "prometheus" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host = target.split(":")[0]
                assert host == "localhost" or host in services, f"{job['job_name']}: {target}"


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    running = [name for name, service in services.items() if service.get("restart") != "no"]
    assert [name for name in running if "healthcheck" not in services[name]] == []


def test_mlflow_and_airflow_require_logins(services: dict[str, dict[str, Any]]) -> None:
    """MLflow runs its basic-auth app; Airflow's login comes from .env, never a generated password."""
    mlflow_image = (PROJECT_ROOT / "infra" / "docker" / "mlflow.Dockerfile").read_text()
    assert 'ENTRYPOINT ["/usr/local/bin/mlflow-server.sh"]' in mlflow_image
    assert "exec mlflow server --app-name basic-auth" in (PROJECT_ROOT / "infra/compose/mlflow-server.sh").read_text()
    mlflow_env = environment(services["mlflow"])
    for name in ("MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert INTERPOLATION.search(mlflow_env[name]), name
    for name in ("serving", "airflow-scheduler"):  # the platform's clients log in
        assert "MLOPS_MLFLOW_TRACKING_PASSWORD" in environment(services[name]), name
    airflow = environment(services["airflow-apiserver"])
    assert airflow.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "false").lower() == "false"
    passwords = airflow["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    init = services["airflow-init"]
    assert passwords in " ".join(init["command"])
    assert "AIRFLOW_ADMIN_PASSWORD" in environment(init)
