"""The RayCluster of the k8s profile, checked without a cluster: valid against KubeRay's own CRD
schema, its pod templates valid Kubernetes, its Ray the platform's pinned Ray, its image the training
image, and its head's client service where the k8s profile's settings point."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings
from tests.infra.test_k8s import KUBERNETES_VERSION
from tests.utils.locks import pins

RAY = PROJECT_ROOT / "infra" / "k8s" / "ray"


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((RAY / "raycluster.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    crd = yaml.safe_load((RAY / "crds" / "ray.io_rayclusters.yaml").read_text())
    [version] = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    found: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return found


def unknown_fields(value: Any, node: dict[str, Any], path: str = "") -> list[str]:
    """Fields the schema does not name (Kubernetes drops them without a word, as ``kubectl apply``
    does without ``--validate=strict``): a misspelt field would silently do nothing."""
    if isinstance(value, list):
        return [f for item in value for f in unknown_fields(item, node.get("items", {}), f"{path}[]")]
    if not isinstance(value, dict) or "properties" not in node:
        return []
    found = []
    for key, item in value.items():
        if key in node["properties"]:
            found += unknown_fields(item, node["properties"][key], f"{path}.{key}")
        elif not node.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            found.append(f"{path}.{key}")
    return found


def templates(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    spec = cluster["spec"]
    return [spec["headGroupSpec"]["template"], *(group["template"] for group in spec["workerGroupSpecs"])]


def test_the_cluster_is_valid_against_kuberays_crd(cluster: dict[str, Any], schema: dict[str, Any]) -> None:
    assert cluster["apiVersion"] == "ray.io/v1"
    validator = jsonschema.Draft7Validator(schema)
    assert [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(cluster)] == []
    assert unknown_fields(cluster, schema) == []
    broken = copy.deepcopy(cluster)
    broken["spec"]["workerGroupSpecs"][0]["replicas"] = "two"
    broken["spec"]["headGroupSpec"]["rayStartParam"] = {}
    assert list(validator.iter_errors(broken)), "the schema checks what it is given"
    assert unknown_fields(broken, schema) == [".spec.headGroupSpec.rayStartParam"]


def test_its_pod_templates_are_valid_kubernetes(cluster: dict[str, Any]) -> None:
    for template in templates(cluster):
        document = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_its_nodes_run_the_pinned_ray_in_the_training_image(cluster: dict[str, Any]) -> None:
    settings = Settings(_env_file=None, profile="k8s")  # type: ignore[call-arg]
    assert cluster["spec"]["rayVersion"] == pins(PROJECT_ROOT / "requirements.txt")["ray"]
    assert cluster["metadata"]["namespace"] == settings.k8s_namespace
    for template in templates(cluster):
        [container] = template["spec"]["containers"]
        assert container["image"] == settings.training_image
        assert container["resources"]["requests"] == container["resources"]["limits"]
    assert "model_training" in (PROJECT_ROOT / "infra" / "docker" / "training.Dockerfile").read_text()


def test_the_k8s_profile_sends_the_per_series_work_to_its_head(cluster: dict[str, Any]) -> None:
    settings = Settings(_env_file=None, profile="k8s")  # type: ignore[call-arg]
    head = cluster["spec"]["headGroupSpec"]
    [container] = head["template"]["spec"]["containers"]
    client = {p["name"]: p["containerPort"] for p in container["ports"]}["client"]
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    assert settings.engine == "ray"
    assert settings.ray_address == f"ray://{name}-head-svc.{namespace}.svc.cluster.local:{client}"
    assert head["rayStartParams"]["ray-client-server-port"] == str(client)
    assert head["rayStartParams"]["num-cpus"] == "0", "the head schedules no work"
    assert Settings(_env_file=None).engine == "local", "the embedded default runs in-process"  # type: ignore[call-arg]
