"""The training pod, rendered by the cncf-kubernetes provider's own code (no cluster needed)."""

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.utils.platform import PlatformEnv, a_plan, with_resolved_arguments


@pytest.fixture
def pod_task(tmp_path: Path, airflow_db: Path):  # type: ignore[no-untyped-def]
    """The final training task of the k8s executor, its arguments as its upstream task hands them over."""
    extra = {
        "MLOPS_TRAINING_EXECUTOR": "kubernetes",
        "MLOPS_TRAINING_IMAGE": "registry.example/mlops-training:1.2.3",
        "MLOPS_TRAINING_GPUS": "2",
        "MLOPS_GPU_NODE_POOL": "a100-pool",
        "MLOPS_MLFLOW_TRACKING_URI": "http://mlflow:5000",
        "MLOPS_AWS_SECRET_ACCESS_KEY": "never-in-a-pod-spec",
        "MLOPS_OPTUNA_STORAGE": "postgresql+psycopg://optuna:optuna-db-password@db:5432/optuna",
    }
    with PlatformEnv(tmp_path, **extra) as env:
        task = env.dag("retrain_synthetic_forecaster").get_task("train_final")
        assert task.arguments.operator.task_id == "train_command", "the arguments come from the plan, by XCom"
        plan = a_plan(env.config)
        argv = plan.train_command("s3://runs/rows.parquet", "s3://runs/params.json", "s3://runs/dataset.yaml")
        yield with_resolved_arguments(task, argv)


def test_training_runs_as_a_pod_on_the_gpu_pool(pod_task) -> None:  # type: ignore[no-untyped-def]
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    assert isinstance(pod_task, KubernetesPodOperator)
    pod = pod_task.build_pod_request_obj(dry_run=True)
    container = pod.spec.containers[0]
    assert container.image == "registry.example/mlops-training:1.2.3"
    assert container.command == ["python", "-m", "model_training"]
    assert container.args[0] == "train"
    assert container.args[container.args.index("--tag") + 1] == "dag_run_id=manual__2024-03-31"
    assert container.args[container.args.index("--params-file") + 1] == "s3://runs/params.json"
    assert container.args[container.args.index("--dataset") + 1] == "s3://runs/dataset.yaml"
    assert container.args[container.args.index("--study") + 1] == "synthetic-xgboost-manual__2024-03-31"
    assert container.resources.limits["nvidia.com/gpu"] == "2"
    assert container.resources.requests["cpu"] == "4"
    assert pod.spec.node_selector == {"cloud.google.com/gke-nodepool": "a100-pool"}
    [toleration] = pod.spec.tolerations
    assert (toleration.key, toleration.operator, toleration.effect) == ("nvidia.com/gpu", "Exists", "NoSchedule")
    assert pod.spec.service_account_name == "mlops-training"
    env = {e.name: e.value for e in container.env}
    assert env["MLOPS_PROFILE"] == "local"
    assert env["MLOPS_TRAINING_DEVICE"] == "cuda", "a GPU pod without a GPU fails instead of crawling on CPU"
    assert env["OMP_NUM_THREADS"] == container.resources.limits["cpu"] == "4", "threads held to the CPU limit"
    assert env["MLOPS_MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert [source.secret_ref.name for source in container.env_from] == ["mlops-training-env"]
    assert "never-in-a-pod-spec" not in str(pod.to_dict())
    # A URL with a password stays out of the spec (Airflow keeps it as the rendered template): the
    # training secret carries it.
    assert "optuna-db-password" not in str(pod.to_dict())
    assert "MLOPS_OPTUNA_STORAGE" not in env
    assert pod_task.on_finish_action.value == "delete_pod"
    assert pod_task.get_logs, "the pod's output goes to the task log"
    assert pod_task.startup_timeout_seconds == 600
    assert pod_task.retries == 1


def test_local_executor_runs_the_same_cli_in_a_subprocess(tmp_path: Path, airflow_db: Path) -> None:
    from airflow.providers.standard.operators.python import PythonOperator

    from orchestration.launch import run_training_cli

    with PlatformEnv(tmp_path) as env:
        task = env.dag("retrain_synthetic_forecaster").get_task("train_final")
    assert isinstance(task, PythonOperator)
    assert task.python_callable is run_training_cli
    [argv] = task.op_args
    assert argv.operator.task_id == "train_command", "the command list comes from the plan, by XCom"


def test_tuning_workers_are_pods_of_one_study(tmp_path: Path, airflow_db: Path) -> None:
    """The tuning step expands to one pod per worker at run time, all with the training pod's spec."""
    with PlatformEnv(tmp_path, MLOPS_TRAINING_EXECUTOR="kubernetes", MLOPS_TRAINING_GPUS="1") as env:
        dag = env.dag("retrain_synthetic_forecaster")
        tune = dag.get_task("tune")
        config = str(env.config)
    assert tune.operator_class.__name__ == "TrainingPodOperator"  # the provider's operator, start failures explained
    assert tune.partial_kwargs["image"] == "ghcr.io/mlops-platform/training:latest"
    assert tune.partial_kwargs["container_resources"].limits["nvidia.com/gpu"] == "1"
    assert set(tune.expand_input.value) == {"arguments"}
    assert [t.task_id for t in tune.upstream_list] == ["tuning_commands"]
    assert [t.task_id for t in tune.downstream_list] == ["best_params"]

    plan = a_plan(Path(config), dag_run_id="manual__x", n_trials=9, tuning_workers=3)
    commands = plan.tuning_commands("s3://runs/rows.parquet", "s3://runs/dataset.yaml")
    assert [c[c.index("--worker") + 1] for c in commands] == ["0", "1", "2"]
    assert {c[c.index("--study") + 1] for c in commands} == {"synthetic-xgboost-manual__x"}
    assert all(c[0] == "tune" and c[c.index("--trials") + 1] == "9" for c in commands)
    # no tuning still runs one worker: it finds nothing to do and best_params falls back to the config
    assert len(a_plan(Path(config)).tuning_commands("p", config)) == 1


class PendingPodAPI(http.server.BaseHTTPRequestHandler):
    """The part of a Kubernetes API server that a starting pod's operator reads: the pod stays Pending,
    unschedulable for want of a GPU, as on a cluster whose GPU pool has no free node; no events."""

    pod: dict[str, Any] = {}

    def do_GET(self) -> None:
        if "/events" in self.path:
            body: dict[str, Any] = {"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": []}
        else:
            unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                             "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}  # fmt: skip
            body = {**self.pod, "status": {"phase": "Pending", "conditions": [unschedulable]}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_gpu_pod_that_never_starts_fails_naming_what_it_asks_for(pod_task, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Past the startup timeout the task fails, and the message names the node pool label, the GPU and
    the taint the pod asked for, not only the provider's 'took too long'."""
    from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import PodLaunchFailedException
    from kubernetes.client import ApiClient

    pod = pod_task.build_pod_request_obj(dry_run=True)
    PendingPodAPI.pod = ApiClient().sanitize_for_serialization(pod)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PendingPodAPI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "kube-config.yaml"
    config.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "pending",
            "clusters": [{"name": "pending", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
            "users": [{"name": "airflow", "user": {"token": "t"}}],
            "contexts": [{"name": "pending", "context": {"cluster": "pending", "user": "airflow"}}],
        })
    )  # fmt: skip
    pod_task.config_file = str(config)
    pod_task.startup_timeout_seconds = pod_task.schedule_timeout_seconds = 2
    pod_task.startup_check_interval_seconds = 0.5
    try:
        with pytest.raises(PodLaunchFailedException) as failed:
            pod_task.await_pod_start(pod)
    finally:
        server.shutdown()
    message = str(failed.value)
    assert "too long to be scheduled" in message  # the provider's own reason
    assert f"training pod mlops/{pod.metadata.name} did not start" in message
    assert "nodes labelled cloud.google.com/gke-nodepool=a100-pool" in message
    assert "nvidia.com/gpu=2 free" in message
    assert "tolerating the taint nvidia.com/gpu (NoSchedule)" in message


@pytest.mark.parametrize(("quantity", "threads"), [("4", 4), ("2.5", 3), ("500m", 1), ("1500m", 2), ("0.1", 1)])
def test_a_pods_threads_are_its_cpu_limit_rounded_up(quantity: str, threads: int) -> None:
    from orchestration.launch import cpu_threads

    assert cpu_threads(quantity) == threads


@pytest.mark.parametrize("quantity", ["0", "-1", "0m"])
def test_a_cpu_limit_that_holds_no_cpu_is_refused(quantity: str) -> None:
    from orchestration.launch import cpu_threads

    with pytest.raises(ValueError, match="must be positive"):
        cpu_threads(quantity)
