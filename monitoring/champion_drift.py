"""The daily drift check of the champion, its history, and when drift calls for retraining.

Each check compares the newest materialized features (what the service forecasts from) with the
newest rows the champion was fit on before that window, per entity (the two never share a row:
:func:`feature_drift.measure.version_evidence`, :func:`feature_drift.measure.reference_before`), and
pushes the figures to the
Pushgateway for Prometheus and Grafana. Every check is one MLflow run (tag ``job=drift_monitor``,
one per check date, so a re-run replaces its figures instead of adding a check): that history is what "drift above the
threshold for N consecutive days" is counted on, one count per day of new data. A check whose day
of data was judged already (no new data since) is recorded as such and neither extends nor breaks a
streak: judging the same window again is not a second piece of evidence. Checks without a verdict
(not enough data) break a streak rather than extend it, and a check that led to a retraining trigger
ends its streak.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.dataset import DatasetConfig
from core.partitions import latest_validated_date
from core.settings import Settings
from feature_drift.measure import LISTED, drift_gate, version_evidence
from feature_drift.outcomes import DriftOutcome, DriftResult
from monitoring.outcomes import CheckState, MonitorOutcome

log = logging.getLogger(__name__)

JOB = "drift_monitor"
REASON_LIMIT = 500  # the retraining form's reason field takes at most this many characters


@dataclass(frozen=True)
class CheckRecord:
    check_date: str
    state: CheckState
    triggered: bool
    data_date: str = ""  # the day of data judged (older records: the check date)

    @property
    def day(self) -> str:
        return self.data_date or self.check_date


def state_of(result: DriftResult) -> CheckState:
    if result.outcome is DriftOutcome.NOT_ENOUGH_DATA or result.drift_share is None:
        return CheckState.UNKNOWN
    return CheckState.DRIFTED if result.drifted else CheckState.STEADY


def drifted_streak(history: list[CheckRecord]) -> list[CheckRecord]:
    """The drifted days of data in a row, newest first, up to the first steady, unknown or triggering
    check; checks that found no new data are passed over."""
    streak = []
    judged = [r for r in history if r.state is not CheckState.NO_NEW_DATA]
    for record in sorted(judged, key=lambda r: (r.day, r.check_date), reverse=True):
        if record.state is not CheckState.DRIFTED or record.triggered:
            break
        streak.append(record)
    return streak


def consecutive_drifted(history: list[CheckRecord]) -> int:
    """How many drifted days of data in a row (:func:`drifted_streak`)."""
    return len(drifted_streak(history))


def judged_before(history: list[CheckRecord], check_date: date, data_date: date) -> CheckRecord | None:
    """The check of another date that already judged ``data_date``, if any."""
    return next(
        (
            r
            for r in history
            if r.day == data_date.isoformat()
            and r.check_date != check_date.isoformat()
            and r.state is not CheckState.NO_NEW_DATA
        ),
        None,
    )


def _history(settings: Settings, dataset: DatasetConfig) -> list[Any]:
    from model_registry.tracking import client, experiment_id, literal

    return list(
        client(settings).search_runs(
            experiment_ids=[experiment_id(settings)],
            filter_string=f"tags.job = '{JOB}' and tags.dataset = {literal(dataset.name)}",
            order_by=["attributes.start_time DESC"],
            max_results=500,
        )
    )


def records(runs: list[Any]) -> list[CheckRecord]:
    return [
        CheckRecord(
            check_date=run.data.tags["check_date"],
            state=CheckState(run.data.tags.get("state", CheckState.UNKNOWN)),
            triggered=run.data.tags.get("triggered_retraining") == "true",
            data_date=run.data.tags.get("data_date", ""),
        )
        for run in runs
        if "check_date" in run.data.tags
    ]


def check_champion(
    settings: Settings, dataset: DatasetConfig, check_date: date, data_date: date | None = None
) -> MonitorOutcome:
    """One daily check: Evidently verdicts, an MLflow run, the Pushgateway figures, the trigger decision.

    ``data_date``: the day whose features are judged (the day the daily data DAG just loaded); by
    default the newest validated one."""
    import mlflow

    from model_registry.registry import champion_version
    from model_registry.tracking import require_configured

    require_configured(settings)
    started = time.monotonic()
    model_name = settings.model_name(dataset.name)
    version = champion_version(settings, model_name)
    if version is None:
        raise LookupError(f"{model_name} has no champion to compare with")
    data_date = data_date or latest_validated_date(settings, dataset)
    runs = _history(settings, dataset)
    same_day = next((r.info.run_id for r in runs if r.data.tags.get("check_date") == check_date.isoformat()), None)
    previous = [r for r in records(runs) if r.check_date != check_date.isoformat()]
    required = dataset.promotion.drift_consecutive_checks
    earlier = judged_before(previous, check_date, data_date)
    if earlier is not None:
        return _no_new_data(settings, dataset, check_date, data_date, version, earlier, previous, same_day, started)

    out_dir = settings.artifacts / dataset.name / "drift_monitor" / check_date.isoformat()
    reference = version_evidence(settings, dataset, model_name, version)
    result = drift_gate(settings, dataset, data_date, reference, out_dir)
    state = state_of(result)
    drifted = drifted_streak([*previous, CheckRecord(check_date.isoformat(), state, False, data_date.isoformat())])
    streak = len(drifted)
    trigger = streak >= required
    trigger_reason = ""
    if trigger:
        judged, over = result.judged, result.drifted_entities
        named = [name for name in result.ranked(LISTED) if name in judged]
        entities = ", ".join(f"{name} {judged[name].drift_share:.2f}" for name in named)
        if len(judged) > LISTED:  # many series: how many drifted, the most drifted named
            entities = f"{len(over)} of {len(judged)} entities drifted; {entities} and {len(judged) - LISTED} more"
        trigger_reason = (
            f"drift monitor: drift share above {result.max_drift_share:.2f} on {streak} consecutive days of new "
            f"data up to {data_date} (champion v{version}; {entities})"
        )[:REASON_LIMIT]

    run_id = _record(settings, dataset, check_date, data_date, version, result, state, streak, same_day)
    outcome = MonitorOutcome(
        check_date=check_date.isoformat(),
        data_date=data_date.isoformat(),
        champion_version=version,
        state=state,
        drift=result,
        consecutive_drifted=streak,
        required_consecutive=required,
        trigger=trigger,
        trigger_reason=trigger_reason,
        streak_start=drifted[-1].day if drifted else "",
        check_run_id=run_id,
        seconds=time.monotonic() - started,
    )
    push_monitor_figures(settings, dataset, outcome, result)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metric("check_seconds", outcome.seconds)
    log.info(
        "drift check %s of %s v%s: %s (%s), %d/%d drifted in a row%s",
        check_date, dataset.name, version, state, result.reason, streak, required,
        f"; retraining: {trigger_reason}" if trigger else "",
    )  # fmt: skip
    return outcome


@contextlib.contextmanager
def _check_run(
    settings: Settings,
    dataset: DatasetConfig,
    check_date: date,
    data_date: date,
    version: str,
    state: CheckState,
    reason: str,
    run_id: str | None,
) -> Iterator[Any]:
    """The check's MLflow run, open, with the tags the streak is counted from (``run_id``: the same
    date's run, when it is checked again)."""
    import mlflow

    from model_registry.tracking import experiment_id

    with mlflow.start_run(
        run_id=run_id, experiment_id=experiment_id(settings), run_name=f"drift-check-{dataset.name}-{check_date}"
    ) as run:
        mlflow.set_tags(
            {
                "job": JOB,
                "dataset": dataset.name,
                "check_date": check_date.isoformat(),
                "data_date": data_date.isoformat(),
                "champion_version": version,
                "state": state.value,
                "reason": reason[:5000],
            }
        )
        yield run


def _no_new_data(
    settings: Settings,
    dataset: DatasetConfig,
    check_date: date,
    data_date: date,
    version: str,
    earlier: CheckRecord,
    previous: list[CheckRecord],
    run_id: str | None,
    started: float,
) -> MonitorOutcome:
    """Record a check that found no day of data newer than one already judged: no verdict, no count."""
    reason = f"no new data: {data_date} was judged by the check of {earlier.check_date}"
    with _check_run(settings, dataset, check_date, data_date, version, CheckState.NO_NEW_DATA, reason, run_id) as run:
        run_id = str(run.info.run_id)
    log.warning("drift check %s of %s v%s: %s", check_date, dataset.name, version, reason)
    return MonitorOutcome(
        check_date=check_date.isoformat(),
        data_date=data_date.isoformat(),
        champion_version=version,
        state=CheckState.NO_NEW_DATA,
        drift=None,
        consecutive_drifted=consecutive_drifted(previous),
        required_consecutive=dataset.promotion.drift_consecutive_checks,
        trigger=False,
        trigger_reason="",
        check_run_id=run_id,
        seconds=time.monotonic() - started,
    )


def _record(
    settings: Settings,
    dataset: DatasetConfig,
    check_date: date,
    data_date: date,
    version: str,
    result: DriftResult,
    state: CheckState,
    streak: int,
    run_id: str | None,
) -> str:
    """The check's MLflow run (``run_id``: the same date's run, when it is checked again)."""
    import mlflow

    with _check_run(settings, dataset, check_date, data_date, version, state, result.reason, run_id) as run:
        metrics = {
            "consecutive_drifted": float(streak),
            "reference_rows": float(result.reference_rows),
            "current_rows": float(result.current_rows),
        }
        if result.drift_share is not None:
            metrics["drift_share"] = result.drift_share
        metrics["entities_judged"] = float(len(result.judged))
        metrics["entities_drifted"] = float(len(result.drifted_entities))
        for entity in result.ranked():
            verdict = result.entities[entity]
            if verdict.drift_share is not None:
                metrics[f"drift_share_{entity}"] = verdict.drift_share
                metrics[f"drifted_features_{entity}"] = float(len(verdict.drifted_features))
        mlflow.log_metrics(metrics)
        mlflow.log_dict(result.as_dict(), "drift.json")
        for path in result.report_paths:
            mlflow.log_artifact(path, artifact_path="drift")
        return str(run.info.run_id)


def mark_triggered(settings: Settings, run_id: str, retraining_run_id: str) -> None:
    """Tag the check that started a retraining: the next streak starts after it."""
    from model_registry.tracking import client

    mlflow_client = client(settings)
    mlflow_client.set_tag(run_id, "triggered_retraining", "true")
    mlflow_client.set_tag(run_id, "retraining_run_id", retraining_run_id)


def push_monitor_figures(
    settings: Settings, dataset: DatasetConfig, outcome: MonitorOutcome, result: DriftResult
) -> bool:
    from core.pushgateway import Figure, push_figures

    version = {"version": outcome.champion_version}
    figures = [
        Figure("mlops_drift_last_check_timestamp_seconds", "Unix time of the last drift check.", time.time()),
        Figure("mlops_drift_max_share", "Share of drifted features above which drift counts.", result.max_drift_share),
        Figure("mlops_drift_consecutive_checks", "Drifted days of new data in a row.", outcome.consecutive_drifted),
        Figure("mlops_drift_required_consecutive_checks", "Drifted days in a row that trigger retraining.",
               outcome.required_consecutive),
        Figure("mlops_drift_retraining_triggered", "1 when this check triggered retraining.", float(outcome.trigger)),
        Figure("mlops_drift_max_drifted_entities", "Share of drifted entities above which drift counts.",
               result.max_drifted_entities),
    ]  # fmt: skip
    judged, drifted = len(result.judged), len(result.drifted_entities)
    for state, count in (("judged", judged), ("drifted", drifted), ("not_enough_data", len(result.entities) - judged)):
        figures.append(Figure("mlops_drift_entities", "Entities of the check, by verdict.", count, {"state": state}))
    for entity in result.ranked():
        verdict = result.entities[entity]
        labels = {**version, "entity": entity}
        figures += [
            Figure("mlops_drift_window_rows", "Rows in the drift windows.", verdict.reference_rows,
                   {**labels, "window": "reference"}),
            Figure("mlops_drift_window_rows", "Rows in the drift windows.", verdict.current_rows,
                   {**labels, "window": "current"}),
            Figure("mlops_drift_enough_data", "1 when both windows are large enough for a verdict.",
                   0.0 if verdict.drift_share is None else 1.0, labels),
        ]  # fmt: skip
        if verdict.drift_share is None:
            continue
        figures += [
            Figure("mlops_drift_share", "Share of drifted features.", verdict.drift_share, labels),
            Figure("mlops_drifted_features", "Number of drifted features.", len(verdict.drifted_features), labels),
        ]
        figures += [
            Figure("mlops_drift_feature_score", "Drift score per feature.", score, {**labels, "feature": feature})
            for feature, score in verdict.scores.items()
        ]
    return push_figures(settings, JOB, {"dataset": dataset.name}, figures)
