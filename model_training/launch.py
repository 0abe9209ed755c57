"""Launching the training CLI: a pod on the GPU node pool, or a local subprocess.

Both run ``python -m model_training <argv>``, the exact command a developer runs by hand. The
arguments are a list handed to the process (never a shell string), so values from a DAG run's conf
cannot inject commands. Which one is used is a setting (``training_executor``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from configs.settings import Settings, TrainingExecutor

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

log = logging.getLogger(__name__)

TRAINING_MODULE = ["python", "-m", "model_training"]
# Settings that a pod must share with the scheduler's side; secrets come from a Kubernetes secret.
POD_SETTINGS = ("profile", "mlflow_tracking_uri", "mlflow_experiment", "optuna_storage", "artifacts_dir")


def run_training_cli(argv: list[str], timeout_seconds: float | None = None) -> None:
    """Run the training CLI in a child process; its output goes to this task's log."""
    command = [sys.executable, "-m", "model_training", *[str(a) for a in argv]]
    log.info("running %s", command)
    completed = subprocess.run(command, env=os.environ.copy(), timeout=timeout_seconds, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"training exited with code {completed.returncode}: {command}")


def pod_env(settings: Settings) -> dict[str, str]:
    env = {}
    for name in POD_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            env[f"MLOPS_{name.upper()}"] = str(value)
    return env


def training_operator(task_id: str, settings: Settings, argv: list[str], **kwargs: Any) -> BaseOperator:
    """The operator that runs training: KubernetesPodOperator or a local subprocess.

    ``argv`` may hold Jinja templates (e.g. XCom pulls); both operators render them per run.
    """
    if settings.training_executor is TrainingExecutor.KUBERNETES:
        return _pod_operator(task_id, settings, argv, **kwargs)
    from airflow.providers.standard.operators.python import PythonOperator

    return PythonOperator(task_id=task_id, python_callable=run_training_cli, op_args=[argv], **kwargs)


def _pod_operator(task_id: str, settings: Settings, argv: list[str], **kwargs: Any) -> BaseOperator:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    gpus = settings.training_gpus
    limits = {"cpu": settings.training_cpu, "memory": settings.training_memory}
    if gpus > 0:
        limits["nvidia.com/gpu"] = str(gpus)
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"mlops-{task_id.replace('_', '-')}",
        namespace=settings.k8s_namespace,
        image=settings.training_image,
        cmds=TRAINING_MODULE,
        arguments=argv,
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
        labels={"app.kubernetes.io/part-of": "mlops", "mlops/task": task_id.replace("_", "-")},
        # Pods never outlive their task, success or not (a timed-out start would otherwise leak one).
        on_finish_action="delete_pod",
        startup_timeout_seconds=settings.training_startup_timeout_seconds,
        get_logs=True,
        config_file=str(settings.training_kube_config) if settings.training_kube_config else None,
        **kwargs,
    )
