"""The training pods as a cluster would run them, without a cluster.

The retraining DAG runs with the k8s profile and the Kubernetes executor for training. Each
KubernetesPodOperator task renders its pod with the provider's own code (``build_pod_request_obj``),
then that pod's container runs as a process in the training image as its Dockerfile builds it
(:mod:`tests.utils.pods`): the container's command, arguments and environment, the training secret's
variables from a Secret manifest, the image's working directory, and nothing of the checkout or of
the worker's folders. The pod and the worker share only what a cluster would give them: S3 (a moto
server), the MLflow tracking server (artifacts in S3) and Optuna's PostgreSQL database. The DAG's next
task registers the challenger from what the pod logged; two tuning pods then run at once on one
study. What this does not prove: scheduling on a node (node selector, taint, GPU), image pulls, the
pod's network policy and the service account's rights, which need a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from core.settings import PROJECT_ROOT
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import PlatformEnv
from tests.utils.pods import Image, build, container_process, run_container, secret_environment
from tests.utils.servers import free_port, moto_client, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

S3_SECRET = "pod-s3-secret"
OPTUNA_PASSWORD = "optuna-pod-password"
KUBE_CONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: emulated, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: airflow, user: {token: not-a-real-token}}]
contexts: [{name: emulated, context: {cluster: emulated, user: airflow, namespace: mlops}}]
current-context: emulated
"""
CONF = {"training_window_end": SYNTHETIC_END.isoformat(), "n_trials": 2, "tuning_workers": 2, "reason": "pods"}


@pytest.fixture(scope="module")
def training_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build(PROJECT_ROOT / "infra" / "docker" / "training.Dockerfile", tmp_path_factory.mktemp("training-image"))


@pytest.fixture(scope="module")
def worker_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Airflow worker's folders, shared by the runs of this module as by a worker's day: a second
    run reuses the day's landed, validated and built data, as the retraining DAG does."""
    return tmp_path_factory.mktemp("worker")


@pytest.fixture(scope="module")
def stack(postgres_url: str, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Fresh databases of their own (the MLflow backend; Optuna's, behind a password), the buckets, and
    an ``mlflow server`` that keeps artifacts in S3 and serves them."""
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:6]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for name in ("mlflow", "optuna"):
            connection.exec_driver_sql(f"CREATE DATABASE pods_{name}_{suffix}")
        connection.exec_driver_sql(f"CREATE ROLE pods_optuna_{suffix} LOGIN PASSWORD '{OPTUNA_PASSWORD}'")
        connection.exec_driver_sql(f"ALTER DATABASE pods_optuna_{suffix} OWNER TO pods_optuna_{suffix}")
    admin.dispose()
    server = postgres_url.rsplit("/", 1)[0]
    host = server.split("@")[-1]
    s3 = moto_client(moto_endpoint, S3_SECRET)
    for bucket in ("pods-mlflow", "runs", "lake"):
        s3.create_bucket(Bucket=bucket)
    port = free_port()
    log = tmp_path_factory.mktemp("pods-mlflow") / "server.log"
    mlflow = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
              "--backend-store-uri", f"{server}/pods_mlflow_{suffix}", "--artifacts-destination",
              "s3://pods-mlflow/artifacts", "--serve-artifacts", "--workers", "1"]  # fmt: skip
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": S3_SECRET,
           "MLFLOW_S3_ENDPOINT_URL": moto_endpoint}  # fmt: skip
    with server_process(mlflow, port, timeout=180, log=log, env=env):
        yield {
            "mlflow": f"http://127.0.0.1:{port}",
            "optuna": f"postgresql+psycopg://pods_optuna_{suffix}:{OPTUNA_PASSWORD}@{host}/pods_optuna_{suffix}",
            "s3": moto_endpoint,
        }


def training_secret(stack: dict[str, str]) -> dict[str, Any]:
    """The Secret ``mlops-training-env`` as an operator would create it (what docs/operations/kubernetes.md lists)."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlops-training-env", "namespace": "mlops"},
        "type": "Opaque",
        "stringData": {
            "MLOPS_OPTUNA_STORAGE": stack["optuna"],
            "MLOPS_AWS_ACCESS_KEY_ID": "test",
            "MLOPS_AWS_SECRET_ACCESS_KEY": S3_SECRET,
        },
    }
    kubernetes_validate.validate(secret, "1.33.0", strict=True)
    return secret


class EmulatedCluster:
    """Runs each KubernetesPodOperator's pod in the training image; keeps what it rendered and ran.
    ``replaced``: a task's container command that runs instead of the rendered one (a broken image)."""

    def __init__(self, image: Image, secrets: dict[str, dict[str, str]], replaced: dict[str, list[str]] | None = None):
        self.image, self.secrets, self.replaced = image, secrets, replaced or {}
        self.pods: list[dict[str, Any]] = []

    def execute(self, operator: Any, context: Any) -> None:
        from airflow.exceptions import AirflowException
        from kubernetes.client import ApiClient

        pod = ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(context))
        kubernetes_validate.validate(pod, "1.33.0", strict=True)
        [container] = pod["spec"]["containers"]
        command = self.replaced.get(pod["metadata"]["labels"]["mlops/task"])
        if command is not None:
            container = {**container, "command": command, "args": []}
        ran = run_container(self.image, container, self.secrets)
        print(ran.stdout, ran.stderr, sep="\n")  # what the provider copies into the task log
        self.pods.append({"pod": pod, "returncode": ran.returncode, "output": ran.stdout + ran.stderr})
        if ran.returncode != 0:
            raise AirflowException(f"Pod {pod['metadata']['name']} returned a failure (exit {ran.returncode})")


def worker_env(tmp_path: Path, stack: dict[str, str], redis_server: int, pushgateway: str) -> dict[str, str]:
    """The Airflow worker's settings: the k8s profile, training as pods, the stack's servers."""
    # The cluster the provider would talk to (it reads the config, and reaches no API server here).
    kube_config = tmp_path / "kube-config.yaml"
    kube_config.write_text(KUBE_CONFIG)
    return {
        "MLOPS_TRAINING_KUBE_CONFIG": str(kube_config),
        "MLOPS_PROFILE": "k8s",
        # The profile's Ray cluster is not started here: the steps that map parts of series (the
        # feature build) run in the task. Their Ray runs are test_ray_engine's, on a real cluster.
        "MLOPS_ENGINE": "local",
        "MLOPS_TRAINING_EXECUTOR": "kubernetes",
        "MLOPS_TRAINING_GPUS": "0",  # this machine has none; the GPU pod's spec is held to its template
        # The emulated node is this machine, two tuning pods at once on its two cores: a CPU each, and
        # so one thread each (without it, each pod's trees ran four threads on a contended core).
        "MLOPS_TRAINING_CPU": "1",
        "MLOPS_MLFLOW_TRACKING_URI": stack["mlflow"],
        "MLOPS_OPTUNA_STORAGE": stack["optuna"],
        "MLOPS_S3_ENDPOINT_URL": stack["s3"],
        "MLOPS_AWS_ACCESS_KEY_ID": "test",
        "MLOPS_AWS_SECRET_ACCESS_KEY": S3_SECRET,
        # The worker's own stores, local here: the pods never touch them.
        "MLOPS_REDIS_HOST": "127.0.0.1",
        "MLOPS_REDIS_PORT": str(redis_server),
        "MLOPS_REDIS_PASSWORD": "test-secret",
        "MLOPS_FEAST_REGISTRY": str(tmp_path / "registry.db"),
        "MLOPS_FORECAST_DB": f"sqlite:///{tmp_path / 'forecasts.db'}",
        "MLOPS_PUSHGATEWAY_URL": pushgateway,
        "MLOPS_PROMOTION_LOCK": "file",
    }


@pytest.fixture
def worker(
    worker_root: Path, airflow_db: Path, stack: dict[str, str], redis_server: int, pushgateway: str
) -> dict[str, str]:
    """The worker's settings (:func:`worker_env`) with Airflow's database ready."""
    return worker_env(worker_root, stack, redis_server, pushgateway)


def test_training_pods_run_from_the_image_and_hand_over_through_s3_and_mlflow_alone(
    worker_root: Path,
    worker: dict[str, str],
    training_image: Image,
    stack: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import boto3
    import optuna
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from model_registry.tracking import client

    secret = training_secret(stack)
    cluster = EmulatedCluster(training_image, {"mlops-training-env": secret_environment(secret)})
    monkeypatch.setattr(KubernetesPodOperator, "execute", lambda self, context: cluster.execute(self, context))
    with PlatformEnv(worker_root, **worker) as env:
        settings = env.settings()
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances() if ti.state}
        states.pop("skip_promotion", None)
        assert states.pop("evaluate_candidate") == "skipped", "no candidates to evaluate outside a selection"
        states.pop("promote", None)
        assert set(states.values()) == {"success"}, states

        # Three pods ran: two tuning workers and the final training, each from its rendered spec.
        tasks = [p["pod"]["metadata"]["labels"]["mlops/task"] for p in cluster.pods]
        assert sorted(tasks) == ["train-final", "tune", "tune"]
        for ran in cluster.pods:
            [container] = ran["pod"]["spec"]["containers"]
            assert container["image"] == settings.training_image
            arguments = container["args"]
            assert not any(arg.startswith(("/", str(PROJECT_ROOT), str(worker_root))) for arg in arguments)
            assert arguments[arguments.index("--dataset") + 1].startswith("s3://runs/synthetic/")
            assert stack["optuna"] not in str(ran["pod"]), "the password comes from the secret, not the spec"
            env = {item["name"]: item.get("value") for item in container["env"]}
            assert env["OMP_NUM_THREADS"] == container["resources"]["limits"]["cpu"] == "1", "threads = CPU limit"

        # The challenger is the final pod's MLflow run, registered by the worker's next task.
        # Its refit on every labelled row, logged by the same pod, is a second version of the same run.
        versions = client(settings).search_model_versions(f"tags.dag_run_id = '{run.run_id}'")
        judged = [v for v in versions if "evaluated_version" not in v.tags]
        assert len(judged) == 1
        assert [v.tags["evaluated_version"] for v in versions if v not in judged] == [str(judged[0].version)]
        final = next(p for p in cluster.pods if p["pod"]["metadata"]["labels"]["mlops/task"] == "train-final")
        assert judged[0].run_id in final["output"]
        arguments = final["pod"]["spec"]["containers"][0]["args"]
        assert arguments[arguments.index("--labelled") + 1].endswith("/training_set.labelled.parquet")
        s3 = boto3.client("s3", **settings.boto3_client_kwargs())
        handed = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket="runs")["Contents"]}
        assert {"dataset.yaml", "training_set.parquet", "training_set.holdout.parquet", "params.json"} <= handed
        assert "training_set.labelled.parquet" in handed
        bundles = [o["Key"] for o in s3.list_objects_v2(Bucket="pods-mlflow")["Contents"]]
        assert any(key.endswith("MLmodel") for key in bundles)

        # Two tuning pods at once on one new study: both run trials, the study gets what was asked.
        tune = [p["pod"] for p in cluster.pods if p["pod"]["metadata"]["labels"]["mlops/task"] == "tune"]
        study, running = f"parallel-{uuid.uuid4().hex[:6]}", []
        for pod in tune:
            [container] = pod["spec"]["containers"]
            args = list(container["args"])
            args[args.index("--study") + 1] = study
            args[args.index("--trials") + 1] = "4"
            argv, options = container_process(training_image, {**container, "args": args}, cluster.secrets)
            running.append(
                subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)
            )
        outputs = [process.communicate(timeout=900)[0] for process in running]
        assert [process.returncode for process in running] == [0, 0], outputs
        trials = optuna.load_study(study_name=study, storage=stack["optuna"]).trials
        finished = [t for t in trials if t.state.is_finished()]
        assert len(finished) >= 4
        assert {t.user_attrs["worker"] for t in finished} == {0, 1}, "both pods ran trials of the one study"


def test_a_training_pod_that_exits_0_without_its_run_fails_the_task_that_needs_it(
    worker_root: Path,
    worker: dict[str, str],
    training_image: Image,
    stack: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The final pod's process succeeds without training (an image whose entrypoint does something
    else): the pod's task succeeds as Kubernetes reports it, registration fails saying why, and nothing
    is registered or promoted."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    from model_registry.tracking import client

    secrets = {"mlops-training-env": secret_environment(training_secret(stack))}
    done = ["python", "-c", "print('done')"]  # no tuning asked for: the one tuning pod has nothing to do either
    cluster = EmulatedCluster(training_image, secrets, replaced={"tune": done, "train-final": done})
    monkeypatch.setattr(KubernetesPodOperator, "execute", lambda self, context: cluster.execute(self, context))
    with PlatformEnv(worker_root, **worker) as env:
        run = env.dag("retrain_synthetic_forecaster").test(run_conf={**CONF, "n_trials": 0, "tuning_workers": 1})
        states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
        assert [p["returncode"] for p in cluster.pods] == [0, 0]
        assert (states["train_final"], states["register_challenger"]) == ("success", "failed")
        assert {states[task] for task in ("champion_gate", "drift_gate", "promote")} == {"upstream_failed"}
        assert client(env.settings()).search_model_versions(f"tags.dag_run_id = '{run.run_id}'") == []
    logged = "".join(capfd.readouterr())
    assert f"no finished training run tagged dag_run_id={run.run_id}" in logged
    assert "ended without logging one, even if it exited 0" in logged
