"""Launching the training CLI: a pod on the GPU node pool, or a local subprocess.

Both run ``python -m model_training <argv>``, the exact command a developer runs by hand. The
arguments are a list handed to the process (never a shell string), so values from a DAG run's conf
cannot inject commands. Which one is used is a setting (``training_executor``).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from core.settings import Settings, TrainingExecutor

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

log = logging.getLogger(__name__)

TRAINING_MODULE = ["python", "-m", "model_training"]
TRAINING_UID = 10001  # the training image's user (infra/docker/training.Dockerfile)
# Settings that a pod must share with the scheduler's side; secrets come from a Kubernetes secret. No
# local folder: the pod shares none with the worker, its inputs are objects named in its arguments
# (MLOPS_EXCHANGE_URI) and its outputs go to MLflow and Optuna's database.
POD_SETTINGS = (
    "profile",
    "mlflow_tracking_uri",
    "mlflow_experiment",
    "optuna_storage",
    "s3_endpoint_url",
    "training_device",
)


def run_training_cli(argv: list[str], timeout_seconds: float | None = None) -> None:
    """Run the training CLI in a child process; its output goes to this task's log."""
    if isinstance(argv, str):
        raise TypeError("argv is a list of arguments, never a shell string")
    command = [sys.executable, "-m", "model_training", *[str(a) for a in argv]]
    log.info("running %s", command)
    completed = subprocess.run(command, env=os.environ.copy(), timeout=timeout_seconds, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"training exited with code {completed.returncode}: {command}")


def pod_env(settings: Settings) -> dict[str, str]:
    """The pod's plain environment. A setting that holds a credential (a URL with a password) is left
    out: the pod spec is stored as the task's rendered template, so such values come from the
    training secret (``MLOPS_TRAINING_SECRET``) instead."""
    env = {}
    secrets = settings.secret_values()
    for name in POD_SETTINGS:
        value = getattr(settings, name)
        if value is not None and not any(secret in str(value) for secret in secrets):
            env[f"MLOPS_{name.upper()}"] = str(value)
    if settings.training_gpus > 0 and settings.training_device == "auto":
        # A pod that asked for a GPU and sees none must fail, not train quietly on the CPU.
        env["MLOPS_TRAINING_DEVICE"] = "cuda"
    # XGBoost, LightGBM and PyTorch size their thread pools from the node's cores, not the pod's CPU
    # limit: on a 64-core node a pod limited to 4 CPUs would run 64 threads, throttled by its quota.
    # OpenMP's variable, which all three read, holds them to the limit.
    env["OMP_NUM_THREADS"] = str(cpu_threads(settings.training_cpu))
    return env


def cpu_threads(quantity: str) -> int:
    """The threads a CPU quantity of Kubernetes holds (``"4"``, ``"2.5"``, ``"500m"``), rounded up to
    at least one, as the downward API gives ``limits.cpu`` with a divisor of 1."""
    value = float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    if value <= 0:
        raise ValueError(f"a pod's CPU limit must be positive, not {quantity!r}")
    return max(1, math.ceil(value))


def training_operator(task_id: str, settings: Settings, argv: list[str], **kwargs: Any) -> BaseOperator:
    """The operator that runs training: KubernetesPodOperator or a local subprocess.

    ``argv`` may hold Jinja templates (e.g. XCom pulls); both operators render them per run.
    """
    if settings.training_executor is TrainingExecutor.KUBERNETES:
        return _pod_operator(task_id, settings, argv, **kwargs)
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id=task_id, python_callable=run_training_cli, op_args=[argv], **kwargs)


def mapped_training_operator(task_id: str, settings: Settings, argvs: Any, **kwargs: Any) -> Any:
    """One training process (pod or subprocess) per argument list of ``argvs``, an XCom list known
    at run time: the tuning workers of one shared Optuna study."""
    if settings.training_executor is TrainingExecutor.KUBERNETES:
        from orchestration.pod_operator import TrainingPodOperator

        return TrainingPodOperator.partial(**pod_arguments(task_id, settings), **kwargs).expand(arguments=argvs)
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator.partial(task_id=task_id, python_callable=_run_argv, **kwargs).expand(op_args=argvs)


def _run_argv(*argv: str) -> None:
    run_training_cli(list(argv))


def _pod_operator(task_id: str, settings: Settings, argv: list[str], **kwargs: Any) -> BaseOperator:
    from orchestration.pod_operator import TrainingPodOperator

    return TrainingPodOperator(arguments=argv, **pod_arguments(task_id, settings), **kwargs)


def pod_arguments(task_id: str, settings: Settings) -> dict[str, Any]:
    """Everything about the training pod except its arguments."""
    from kubernetes.client import models as k8s

    gpus = settings.training_gpus
    limits = {"cpu": settings.training_cpu, "memory": settings.training_memory}
    if gpus > 0:
        limits["nvidia.com/gpu"] = str(gpus)
    return dict(
        task_id=task_id,
        name=f"mlops-{task_id.replace('_', '-')}",
        namespace=settings.k8s_namespace,
        image=settings.training_image,
        cmds=TRAINING_MODULE,
        env_vars=pod_env(settings),
        env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.training_secret))],
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": settings.training_cpu, "memory": settings.training_memory}, limits=limits
        ),
        node_selector={settings.gpu_node_pool_label: settings.gpu_node_pool} if gpus > 0 else None,
        tolerations=(
            [k8s.V1Toleration(key=settings.gpu_taint_key, operator="Exists", effect="NoSchedule")] if gpus > 0 else None
        ),
        service_account_name=settings.training_service_account,
        # As the image runs it (USER 10001), with nothing more than training needs.
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=TRAINING_UID,
            fs_group=TRAINING_UID,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False, capabilities=k8s.V1Capabilities(drop=["ALL"])
        ),
        labels={"app.kubernetes.io/part-of": "mlops", "mlops/task": task_id.replace("_", "-")},
        # Pods never outlive their task, success or not (a timed-out start would otherwise leak one).
        on_finish_action="delete_pod",
        startup_timeout_seconds=settings.training_startup_timeout_seconds,
        get_logs=True,
        config_file=str(settings.training_kube_config) if settings.training_kube_config else None,
    )
