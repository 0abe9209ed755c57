"""Kubernetes manifests, checked without a cluster: valid against the Kubernetes schemas
(kubernetes-validate, strict), consistent with the service and the settings, and the GPU training
pod equal to what the cncf-kubernetes provider renders for the retraining DAG."""

from __future__ import annotations

import functools
import re
from datetime import date
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings
from tests.utils.platform import PlatformEnv, a_plan, with_resolved_arguments

K8S = PROJECT_ROOT / "infra" / "k8s"
KUBERNETES_VERSION = "1.33.0"  # an older, widely run release: nothing newer than it is used


def documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    return next(doc for _, doc in documents() if doc["kind"] == kind and doc["metadata"]["name"] == name)


@pytest.mark.parametrize(("path", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(path: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_serving_deployment_probes_routes_the_service_has_on_the_port_it_listens_on() -> None:
    from model_serving.app import create_app

    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    routes = {getattr(route, "path", None) for route in app.routes}
    deployment = resource("Deployment", "forecast-serving")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    config = resource("ConfigMap", "forecast-serving")["data"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == int(config["MLOPS_SERVING_PORT"])
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in routes
        assert container[probe]["httpGet"]["port"] == "http"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    strategy = deployment["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0  # a rollout never lowers capacity
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]


def test_the_service_hpa_and_pdb_select_the_serving_pods() -> None:
    labels = resource("Deployment", "forecast-serving")["spec"]["template"]["metadata"]["labels"]
    selected = [
        resource("Service", "forecast-serving")["spec"]["selector"],
        resource("PodDisruptionBudget", "forecast-serving")["spec"]["selector"]["matchLabels"],
    ]
    assert all(selector.items() <= labels.items() for selector in selected)
    hpa = resource("HorizontalPodAutoscaler", "forecast-serving")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "forecast-serving"
    assert hpa["spec"]["minReplicas"] > resource("PodDisruptionBudget", "forecast-serving")["spec"]["minAvailable"]


def test_every_setting_in_the_manifests_and_helm_values_is_read_by_the_settings() -> None:
    fields = {f"MLOPS_{name.upper()}" for name in Settings.model_fields}
    assert set(resource("ConfigMap", "forecast-serving")["data"]) <= fields
    values = yaml.safe_load((K8S / "helm" / "airflow-values.yaml").read_text())
    assert {e["name"] for e in values["env"]} <= fields
    assert values["executor"] == "KubernetesExecutor"


def test_airflow_task_pods_share_no_volume_and_hand_over_through_object_storage_and_databases() -> None:
    """What :mod:`tests.e2e.test_lake` runs task by task, as the Helm values deploy it."""
    values = yaml.safe_load((K8S / "helm" / "airflow-values.yaml").read_text())
    assert not {"extraVolumes", "extraVolumeMounts", "persistence"} & set(values["workers"])
    env = {e["name"]: e.get("value") for e in values["env"]}
    assert env["MLOPS_HOME"].startswith("/")  # one path in every task pod: Feast's offline source lies under it
    k8s = Settings(_env_file=None, profile=env["MLOPS_PROFILE"], home=env["MLOPS_HOME"])  # type: ignore[call-arg]
    assert (k8s.lake_uri, k8s.exchange_uri) == ("s3://lake", "s3://runs")
    assert str(k8s.online_store) == "redis"
    assert str(k8s.optuna_storage).startswith("postgresql")
    assert str(k8s.forecast_db).startswith("postgresql")
    assert str(k8s.mlflow_tracking_uri).startswith("http")
    assert "MLOPS_FEAST_REGISTRY" in (K8S / "helm" / "airflow-values.yaml").read_text()  # the secret's database URL


def test_airflow_workers_may_launch_training_pods_and_training_pods_may_not_call_the_api() -> None:
    values = yaml.safe_load((K8S / "helm" / "airflow-values.yaml").read_text())
    binding = resource("RoleBinding", "training-pod-launcher")
    [subject] = binding["subjects"]
    assert subject["name"] == values["workers"]["serviceAccount"]["name"]
    rules = resource("Role", "training-pod-launcher")["rules"]
    granted = {(resource_name, verb) for rule in rules for resource_name in rule["resources"] for verb in rule["verbs"]}
    # What KubernetesPodOperator does: create, watch and read the pod, follow its logs, delete it.
    needed = {("pods", v) for v in ("create", "get", "list", "watch", "delete")} | {("pods/log", "get")}
    assert needed <= granted
    assert binding["metadata"]["namespace"] == Settings(_env_file=None, profile="k8s").k8s_namespace  # type: ignore[call-arg]
    training = resource("ServiceAccount", "mlops-training")
    assert training["automountServiceAccountToken"] is False


def without_empty(value: Any) -> Any:
    """``value`` without the empty mappings and lists (and None) the provider fills in for fields not set."""
    if isinstance(value, dict):
        kept = {k: without_empty(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [without_empty(v) for v in value]
    return value


def test_the_gpu_pod_template_is_the_pod_the_provider_renders_for_training(tmp_path: Path, airflow_db: Path) -> None:
    """Every field of the template is what the provider renders for the final training of an ETT run
    with the k8s profile's defaults (its inputs objects under the exchange prefix); only the random
    suffix of the pod's name differs, and the fields the provider leaves empty are not written."""
    from kubernetes.client import ApiClient

    from core.dataset import DatasetConfig

    template = resource("Pod", "mlops-train-final")
    with PlatformEnv(tmp_path, MLOPS_PROFILE="k8s", MLOPS_TRAINING_EXECUTOR="kubernetes") as env:
        task = env.dag("retrain_synthetic_forecaster").get_task("train_final")
        config = PROJECT_ROOT / "configs" / "datasets" / "ett.yaml"
        ett = DatasetConfig.from_yaml(config)
        plan = a_plan(config, dataset_name="ett", logical_date=date(2018, 6, 26), dag_run_id="manual__2018-06-26",
                      horizon=ett.horizon)  # fmt: skip
        settings = Settings(_env_file=None, profile="k8s")  # type: ignore[call-arg]
        at = functools.partial(plan.location, settings, ett)
        argv = plan.train_command(at("training_set.parquet"), at("params.json"), at("dataset.yaml"))
        pod = with_resolved_arguments(task, argv).build_pod_request_obj(dry_run=True)
        rendered = ApiClient().sanitize_for_serialization(pod)
    kubernetes_validate.validate(rendered, KUBERNETES_VERSION, strict=True)
    name = rendered["metadata"]["name"]
    assert re.fullmatch(r"mlops-train-final-[a-z0-9]{8}", name), name
    rendered["metadata"]["name"] = template["metadata"]["name"]
    assert without_empty(rendered) == template
    [container] = rendered["spec"]["containers"]
    assert all(not arg.startswith("/") for arg in container["args"]), "no path of the worker's filesystem"


def test_the_training_pod_runs_as_the_training_image_user() -> None:
    """runAsNonRoot needs a numeric user; the pod's and the image's must be the same one."""
    from orchestration.launch import TRAINING_UID

    dockerfile = (PROJECT_ROOT / "infra" / "docker" / "training.Dockerfile").read_text()
    [user] = re.findall(r"^USER (\S+)$", dockerfile, flags=re.MULTILINE)
    assert user == str(TRAINING_UID)
    assert f"--uid {TRAINING_UID} " in dockerfile
