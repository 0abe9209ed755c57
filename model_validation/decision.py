"""The promotion decision of a retraining run, from its gates' outcomes."""

from __future__ import annotations

import json
import time
from typing import Any

from configs.run_plan import RunPlan
from configs.settings import Settings


def promotion_allowed(champion: dict[str, Any], drift: dict[str, Any]) -> bool:
    """Both gates must let it through; a forced run overrides the drift gate only, never a worse model."""
    return bool(champion["passed"]) and drift["outcome"] != "blocked"


def explain_skip(champion: dict[str, Any], drift: dict[str, Any]) -> str:
    reasons = []
    if not champion["passed"]:
        reasons.append(f"champion/challenger gate failed: {champion['reason']}")
    if drift["outcome"] == "blocked":
        reasons.append(f"drift gate blocked: {drift['reason']}")
    return "not promoted: " + "; ".join(reasons)


def record_decision(settings: Settings, model_name: str, version: str, promoted: bool, reason: str) -> None:
    """The run's final word on the version, as a tag next to each gate's own."""
    from model_registry.tracking import client

    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(model_name, version, "gate_decision", "promoted" if promoted else "rejected")
    mlflow_client.set_model_version_tag(model_name, version, "gate_decision_reason", reason)


def run_summary(
    settings: Settings,
    model_name: str,
    plan: RunPlan,
    version: str,
    champion: dict[str, Any],
    drift: dict[str, Any],
) -> str:
    """One JSON line that tells what the run did (also the task's return value in the UI)."""
    from model_registry.registry import champion_version

    summary = {
        "model": model_name,
        "version": version,
        "champion_now": champion_version(settings, model_name),
        "promoted": champion_version(settings, model_name) == version,
        "data_date": plan.logical_date.isoformat(),
        "family": plan.family,
        "horizon": plan.horizon,
        "challenger_mae": champion["challenger_mae"],
        "baseline_mae": champion["baseline_mae"],
        "champion_mae": champion["champion_mae"],
        "drift": drift["outcome"],
        "drift_share": drift["drift_share"],
        "reason": plan.reason,
    }
    publish_run(settings, plan, summary["promoted"])
    return json.dumps(summary, sort_keys=True)


def publish_run(settings: Settings, plan: RunPlan, promoted: bool) -> bool:
    """Tell Prometheus a retraining run finished (the "no successful retraining in N days" alert)."""
    from configs.dataset import DatasetConfig
    from monitoring.pushgateway import Figure, push_figures

    dataset = DatasetConfig.from_yaml(plan.dataset_config)
    figures = [
        Figure(
            "mlops_retrain_last_success_timestamp_seconds", "End of the last retraining run that finished.", time.time()
        ),
        Figure("mlops_retrain_last_promoted", "1 when the last finished run promoted its model.", float(promoted)),
    ]
    return push_figures(settings, "retrain", {"dataset": dataset.name}, figures)
