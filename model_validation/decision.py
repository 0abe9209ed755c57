"""The promotion decision of a retraining run, from its gates' outcomes."""

from __future__ import annotations

import time
from datetime import date

from core.settings import Settings
from feature_drift.outcomes import DriftResult
from model_validation.outcomes import GateDecision, RunSummary


def promotion_allowed(champion: GateDecision, drift: DriftResult) -> bool:
    """Both gates must let it through; a forced run overrides the drift gate only, never a worse model."""
    return champion.passed and drift.outcome.allows_promotion


def explain_skip(champion: GateDecision, drift: DriftResult) -> str:
    reasons = []
    if not champion.passed:
        reasons.append(f"champion/challenger gate failed: {champion.reason}")
    if not drift.outcome.allows_promotion:
        reasons.append(f"drift gate blocked: {drift.reason}")
    return "not promoted: " + "; ".join(reasons)


def promotion_reason(champion: GateDecision, drift: DriftResult, judged: str = "", served: str = "") -> str:
    """Why a version that passed both gates is promoted (recorded on the version); ``served`` differs
    from ``judged`` when the refit on every labelled row serves."""
    refit = f"; v{served} is v{judged} refitted on every labelled row" if served and served != judged else ""
    return f"{champion.reason}; {drift.reason}{refit}"


def promote_served(
    settings: Settings,
    model_name: str,
    judged: str,
    served: str,
    champion: GateDecision,
    drift: DriftResult,
    note: str = "",
) -> str:
    """Make ``served`` (``judged`` itself, or its refit on every labelled row) the champion, refused if
    another run moved the champion after the gate compared against it; the decision is recorded on
    both versions. Returns the reason recorded."""
    from model_registry.promotion import promote_version

    reason = promotion_reason(champion, drift, judged, served) + (f"; {note}" if note else "")
    promote_version(settings, model_name, served, reason, expected_champion=champion.champion_version)
    for version in {judged, served}:
        record_decision(settings, model_name, version, True, reason)
    return reason


def record_decision(settings: Settings, model_name: str, version: str, promoted: bool, reason: str) -> None:
    """The run's final word on the version, as a tag next to each gate's own."""
    from model_registry.tracking import client

    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(model_name, version, "gate_decision", "promoted" if promoted else "rejected")
    mlflow_client.set_model_version_tag(model_name, version, "gate_decision_reason", reason)


def summarize_run(
    settings: Settings,
    dataset_name: str,
    version: str,
    champion: GateDecision,
    drift: DriftResult,
    *,
    data_date: date,
    family: str,
    horizon: int | None,
    reason: str,
) -> RunSummary:
    """What the run did (the task's return value in the UI); also tells Prometheus that it finished."""
    from model_registry.registry import champion_version, evaluated_fit

    model_name = settings.model_name(dataset_name)
    champion_now = champion_version(settings, model_name)
    # The run promoted its version, or that version's refit on every labelled row.
    promoted = champion_now is not None and evaluated_fit(settings, model_name, champion_now) == version
    summary = RunSummary(
        model=model_name,
        version=version,
        champion_now=champion_now,
        promoted=promoted,
        data_date=data_date.isoformat(),
        family=family,
        horizon=horizon,
        challenger_mae=champion.challenger_mae,
        baseline_mae=champion.baseline_mae,
        champion_mae=champion.champion_mae,
        drift=drift.outcome,
        drift_share=drift.drift_share,
        reason=reason,
    )
    publish_run(settings, dataset_name, summary.promoted)
    return summary


def publish_run(settings: Settings, dataset_name: str, promoted: bool) -> bool:
    """Tell Prometheus a retraining run finished (the "no successful retraining in N days" alert)."""
    from core.pushgateway import Figure, push_figures

    figures = [
        Figure(
            "mlops_retrain_last_success_timestamp_seconds", "End of the last retraining run that finished.", time.time()
        ),
        Figure("mlops_retrain_last_promoted", "1 when the last finished run promoted its model.", float(promoted)),
    ]
    return push_figures(settings, "retrain", {"dataset": dataset_name}, figures)
