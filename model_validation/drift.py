"""Drift gate of a promotion: the newest window a version would serve against the rows it was fit on before it.

The measurement itself (per entity, Evidently's drift tests, the verdict) is
:mod:`feature_drift.measure`, shared with the daily drift check of the champion; this module records
the gate's outcome on the version (its run's figures and reports, the version's tags), and
calibrates the gate's threshold on a dataset's own past (``python -m model_validation
calibrate-drift``).
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import pandas as pd

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.partitions import latest_validated_date
from core.settings import Settings
from feature_drift.measure import drift_columns, drift_gate, drift_view, evidence_of, version_evidence
from feature_drift.outcomes import DriftOutcome, DriftResult


def gate_version(
    settings: Settings,
    dataset: DatasetConfig,
    version: str,
    logical_date: date,
    training_set: str | None,
    out_dir: Path,
    force: bool = False,
    forced_because: str = "",
) -> DriftResult:
    """The drift gate of a registered version: the newest rows the version to serve is fit on (with
    ``training.refit``, every labelled row of the run's training set at ``training_set``, a local path or
    object; otherwise its training rows; read back from the offline source when None) against the newest
    window the service forecasts from (the newest validated day, or ``logical_date`` if later), the two
    never sharing a row; reports and figures to the version's run, outcome to its tags."""
    from mlflow.entities import Metric

    from core.objects import ParquetRows, exists
    from feature_store.training_set import labelled_location
    from model_registry.tracking import client

    model_name = settings.model_name(dataset.name)
    if training_set is None:
        fit_rows = version_evidence(settings, dataset, model_name, version)
    else:
        every_row = labelled_location(training_set)
        refit = dataset.training.refit and exists(every_row, settings)
        location = every_row if refit else training_set
        last = max(group.max() for group in ParquetRows(location, settings).column(EVENT_TIMESTAMP))
        fit_rows = evidence_of(location, last, dataset)
    newest = max(logical_date, latest_validated_date(settings, dataset))
    result = drift_gate(settings, dataset, newest, fit_rows, out_dir, force, forced_because)
    mlflow_client = client(settings)
    run_id = str(mlflow_client.get_model_version(model_name, version).run_id)
    for path in result.report_paths:
        mlflow_client.log_artifact(run_id, path, artifact_path="drift")
    mlflow_client.log_dict(run_id, result.as_dict(), "gates/drift.json")
    # One call for the run's figures: the share, the counts, and the most drifted entities' own shares
    # (every entity's is in gates/drift.json), however many series the dataset has.
    figures = {
        "drift_entities_judged": float(len(result.judged)),
        "drift_entities_drifted": float(len(result.drifted_entities)),
    }
    if result.drift_share is not None:
        figures["drift_share"] = result.drift_share
    for entity in result.ranked():
        verdict = result.entities[entity]
        if verdict.drift_share is not None:
            figures[f"drift_share_{entity}"] = verdict.drift_share
    stamp = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric(key, value, stamp, 0) for key, value in figures.items()])
    tags = {
        "gate_drift": result.outcome.value,
        "gate_drift_reason": result.reason,
        "drift_share": "" if result.drift_share is None else f"{result.drift_share:.4f}",
        "gate_max_drift_share": str(result.max_drift_share),
    }
    if result.outcome is DriftOutcome.FORCED:
        tags["force_promote_reason"] = forced_because or "no reason given"
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    return result


def normed_wasserstein(reference: pd.Series, current: pd.Series) -> float:
    """Evidently's ``wasserstein`` drift score: the Wasserstein distance in reference standard deviations."""
    import numpy as np
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(reference, current) / max(float(np.std(reference)), 0.001))


def calibrate_threshold(
    reference: pd.DataFrame, dataset: DatasetConfig, thresholds: list[float]
) -> dict[str, dict[float, float]]:
    """How often the gate would have fired on the reference's own past: per entity and threshold, the
    share of ``drift_window``-long slices of the reference whose share of drifted features is above
    ``max_drift_share``.

    A threshold that flags most past weeks of normal data measures the seasons, not drift; pick one
    that flags few (the dataset config's ``drift_threshold``). Only the ``wasserstein`` method.
    """
    if dataset.promotion.drift_method != "wasserstein":
        raise ValueError("drift calibration supports the wasserstein method only")
    columns, key = drift_columns(dataset), dataset.entity_column
    rates: dict[str, dict[float, float]] = {}
    for entity, rows in drift_view(reference, dataset).dropna(subset=columns).groupby(key):
        rows = rows.sort_values(EVENT_TIMESTAMP)
        stamps = rows[EVENT_TIMESTAMP]
        window = dataset.promotion.drift_window
        starts = pd.date_range(stamps.min(), stamps.max() - window, freq=window)
        flagged = {t: 0 for t in thresholds}
        slices = 0
        for start in starts:
            part = rows[(stamps >= start) & (stamps < start + window)]
            if len(part) < dataset.promotion.min_drift_rows:
                continue
            slices += 1
            scores = [normed_wasserstein(rows[c], part[c]) for c in columns]
            for t in thresholds:
                share = sum(score >= t for score in scores) / len(scores)
                flagged[t] += share > dataset.promotion.max_drift_share
        rates[str(entity)] = {t: flagged[t] / slices if slices else float("nan") for t in thresholds}
    return rates
