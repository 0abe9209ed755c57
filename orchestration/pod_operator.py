"""The training pod's operator: the provider's KubernetesPodOperator, with a failure to start explained.

A GPU pod that no node can take stays ``Pending`` until the startup timeout, and the provider then
says only that the pod took too long. Almost always the reason is what the pod asks for: the GPU
node pool (its label), the GPU taint it tolerates, the ``nvidia.com/gpu`` resource. The message
names them, so the engineer reading the task log knows what to check. Imported only where training
runs as pods: it loads the Kubernetes provider.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import PodLaunchFailedException
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.pod_manager import PodLaunchTimeoutException


def why_not_started(pod: Any, error: BaseException) -> str:
    """The provider's reason, and what the pod asked of the cluster that may be missing."""
    spec = pod.spec
    [container] = spec.containers
    limits = (container.resources.limits or {}) if container.resources else {}
    wanted = [f"{name}={value}" for name, value in sorted(limits.items()) if "gpu" in name]
    selector = ", ".join(f"{k}={v}" for k, v in sorted((spec.node_selector or {}).items()))
    tolerated = ", ".join(f"{t.key} ({t.effect})" for t in spec.tolerations or [])
    asks = [
        f"nodes labelled {selector}" if selector else "any node",
        f"{', '.join(wanted)} free on one of them" if wanted else "",
        f"tolerating the taint {tolerated}" if tolerated else "",
    ]
    return (
        f"training pod {pod.metadata.namespace}/{pod.metadata.name} did not start: {error}. It asks for "
        f"{'; '.join(a for a in asks if a)}. A GPU pool scaled to zero or too small, a node pool label "
        "other than MLOPS_GPU_NODE_POOL_LABEL=MLOPS_GPU_NODE_POOL, or nodes without the NVIDIA device plugin "
        "keep it Pending (kubectl describe pod shows the scheduler's events); MLOPS_TRAINING_GPUS=0 trains on CPUs."
    )


class TrainingPodOperator(KubernetesPodOperator):
    """KubernetesPodOperator whose pods that never start fail with :func:`why_not_started`."""

    def await_pod_start(self, pod: Any) -> None:
        try:
            super().await_pod_start(pod)
        except (PodLaunchFailedException, PodLaunchTimeoutException) as exc:
            raise PodLaunchFailedException(why_not_started(pod, exc)) from exc
