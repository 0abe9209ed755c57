"""Champion/challenger gate: both registered bundles forecast the same holdout, from the same features.

The holdout is the newest span of the run's training window, which the challenger never trained
on (:func:`feature_store.training_set.split_holdout`). The challenger must beat both baselines on
it, seasonal naive and naive (the last value), and, when there is a champion, reach at most the
champion's MAE times ``1 - min_improvement`` (then a baseline the champion loses to as well is not
demanded: see :func:`decide`). A champion refitted on every labelled row is represented by its
evaluated fit, the version its own gates judged, which never saw the rows of its holdout.
The challenger's bands are scored on the same holdout: their coverage is reported and, when the
dataset sets ``promotion.coverage_tolerance``, must lie within it of each nominal level.
The decision, the scores and the thresholds are logged to the challenger's MLflow run and set as
tags on its model version.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, label_names
from core.dataset import DatasetConfig
from core.settings import Settings
from model_registry.registry import champion_version, evaluated_fit
from model_registry.tracking import client
from model_training.forecasters import baselines
from model_validation.outcomes import GateDecision

log = logging.getLogger(__name__)

GATE_ARTIFACT = "gates/champion_challenger.json"


def decide(
    challenger_mae: float,
    baseline_maes: dict[str, float],
    champion_mae: float | None,
    min_improvement: float,
    measure: str = "MAE",
    same_as: tuple[str, ...] = (),
) -> tuple[bool, list[str]]:
    """The rule itself: (passed, one reason per condition). ``baseline_maes``: each baseline's error,
    in the same ``measure`` as the challenger's and the champion's (the gate passes MASE: see
    :func:`holdout_scales`); ``same_as``: the baselines whose very forecasts the challenger's are.

    With a champion, the challenger must beat it by the margin and every baseline the champion
    itself beats on this holdout. A baseline the champion loses to as well is not demanded: keeping
    the champion would serve something worse than the challenger and no better than that baseline
    (after a change that a baseline repeats for free, such as a new daily cycle, a retrained model
    can beat the stale champion days before it beats the baseline). The realized-error alert keeps
    saying so while the champion stays above naive's error.
    """
    # A challenger whose forecasts are a baseline's (a naive candidate chosen where nothing beats the
    # last value) cannot beat it, and is no worse: that baseline is not demanded of it.
    beaten = {name: challenger_mae < mae or name in same_as for name, mae in baseline_maes.items()}

    def versus(name: str, mae: float) -> str:
        if name in same_as:
            return f"= {name} {mae:.4f} (its very forecasts)"
        return f"{'<' if beaten[name] else '>='} {name} {mae:.4f}"

    against = ", ".join(versus(name, mae) for name, mae in baseline_maes.items())
    reasons = [f"holdout {measure} {challenger_mae:.4f} {against}"]
    if champion_mae is None:
        reasons.append("no champion yet: the baseline rule decides")
        return all(beaten.values()), reasons
    waived = [name for name, mae in baseline_maes.items() if champion_mae >= mae]
    beats_baseline = all(beaten[name] for name in baseline_maes if name not in waived)
    bound = champion_mae * (1 - min_improvement)
    beats_champion = challenger_mae <= bound
    reasons.append(
        f"{'<=' if beats_champion else '>'} champion {champion_mae:.4f} x (1 - {min_improvement}) = {bound:.4f}"
    )
    if waived and not all(beaten[name] for name in waived):
        losses = " and ".join(waived)
        reasons.append(f"the champion loses to {losses} on this holdout too: not demanded of the challenger")
    return beats_baseline and beats_champion, reasons


def holdout_errors(
    forecast: np.ndarray, holdout: pd.DataFrame, dataset: DatasetConfig
) -> tuple[float, dict[str, float]]:
    """MAE over the whole holdout and per entity."""
    errors = np.abs(holdout[label_names(dataset)].to_numpy(dtype=np.float64) - forecast)
    per_row = pd.Series(errors.mean(axis=1), index=holdout.index)
    by_entity = per_row.groupby(holdout[dataset.entity_column]).mean()
    return float(errors.mean()), {str(k): float(v) for k, v in by_entity.items()}


def holdout_scales(holdout: pd.DataFrame, dataset: DatasetConfig) -> dict[str, float]:
    """Each entity's scale, as MASE takes it (:func:`core.history.seasonal_scale`), of its values before
    the holdout (the history of its first holdout row); without histories, of the holdout's own values."""
    from core.columns import history_name
    from core.history import seasonal_scale, with_history

    name = history_name(dataset)
    if name not in holdout.columns:
        holdout = with_history(holdout, holdout, dataset)
    first = holdout.sort_values(EVENT_TIMESTAMP).groupby(dataset.entity_column, sort=True).head(1)
    return {
        str(entity): seasonal_scale(np.asarray(window, dtype=np.float64), dataset.seasonal_period)
        for entity, window in zip(first[dataset.entity_column], first[name], strict=True)
    }


def scaled(by_entity: dict[str, float], scales: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Each entity's MAE over its scale (its MASE), and their mean: every series counts the same,
    whatever its level, where a pooled MAE is the large series' alone."""
    per_entity = {entity: mae / scales[entity] for entity, mae in by_entity.items()}
    return float(np.mean(list(per_entity.values()))), per_entity


def coverage_check(coverage: dict[str, float], tolerance: float | None) -> tuple[bool, str | None]:
    """The gate's optional coverage rule: each level's realized coverage within ``tolerance`` of its
    nominal level, either side (too narrow misleads, too wide says nothing). Off (None): always passes,
    and the coverage is only reported."""
    if not coverage:
        return tolerance is None, None if tolerance is None else "no bands to check coverage against"
    parts = [f"{key}% bands cover {value:.1%}" for key, value in coverage.items()]
    if tolerance is None:
        return True, "; ".join(parts)
    misses = [key for key, value in coverage.items() if abs(value - float(key) / 100) > tolerance]
    verdict = f"outside {tolerance:.1%} of nominal at {', '.join(misses)}%" if misses else f"within {tolerance:.1%}"
    return not misses, f"{'; '.join(parts)}: {verdict}"


def holdout_coverage(output: pd.DataFrame, holdout: pd.DataFrame, dataset: DatasetConfig) -> dict[str, float]:
    """Realized coverage of a PyFunc output's bands on the holdout, per level key; empty without bands."""
    from model_bundle.intervals import level_key, score_bands
    from model_bundle.outputs import bands_of

    actual = holdout[label_names(dataset)].to_numpy(dtype=np.float64)
    return {
        level_key(level): float(score_bands(lower, upper, actual, level).inside.mean())
        for level, (lower, upper) in bands_of(output)
    }


def _predict(
    settings: Settings, model_name: str, version: str, holdout: pd.DataFrame, entity_column: str
) -> pd.DataFrame:
    """A registered version's PyFunc output (point forecasts and bands) on the holdout's rows."""
    from model_bundle.outputs import point_forecast, pyfunc_inputs
    from model_registry.provenance import trusted_model

    with trusted_model(settings, model_name, version) as model:
        output: pd.DataFrame = model.predict(pyfunc_inputs(model.metadata.get_input_schema(), holdout, entity_column))
    if not np.isfinite(point_forecast(output)).all():
        raise RuntimeError(f"{model_name} v{version} forecasts non-finite values on the holdout")
    return output


@dataclass(frozen=True)
class _ChampionScore:
    """The champion's side of the gate: which version serves, which fit of it is judged, and how that
    fit scored on the holdout (None and empty without a champion to compare with)."""

    version: str | None = None
    judged: str | None = None
    mae: float | None = None
    mase: float | None = None
    mae_by_entity: dict[str, float] = field(default_factory=dict)
    saw_holdout: bool = False


def _champion_on_holdout(
    settings: Settings,
    dataset: DatasetConfig,
    model_name: str,
    version: str,
    holdout: pd.DataFrame,
    scales: dict[str, float],
) -> _ChampionScore:
    """The current champion scored on the challenger's holdout, or an empty score when there is none
    (or the challenger is the champion's own evaluated fit)."""
    from model_bundle.outputs import point_forecast

    current = champion_version(settings, model_name)
    # A champion refitted on every labelled row has seen this holdout's older rows: it is judged by its
    # evaluated fit, the model its own gates judged, which never saw a row from its holdout on.
    judged = evaluated_fit(settings, model_name, current) if current is not None else None
    if current is None or judged is None or judged == version:
        return _ChampionScore()
    mae, by_entity = holdout_errors(
        point_forecast(_predict(settings, model_name, judged, holdout, dataset.entity_column)), holdout, dataset
    )
    mlflow_client = client(settings)
    run = mlflow_client.get_run(str(mlflow_client.get_model_version(model_name, judged).run_id))
    trained_until = run.data.params.get("training_end")
    # A champion trained on these rows scores too well: the comparison is harder, never easier.
    saw_holdout = trained_until is not None and pd.Timestamp(trained_until) >= holdout[EVENT_TIMESTAMP].min()
    return _ChampionScore(current, judged, mae, scaled(by_entity, scales)[0], by_entity, saw_holdout)


def evaluate_challenger(
    settings: Settings, dataset: DatasetConfig, model_name: str, version: str, holdout: pd.DataFrame
) -> GateDecision:
    """Score challenger, champion and seasonal naive on ``holdout``; record and return the decision."""
    if holdout.empty:
        raise ValueError(f"{dataset.name}: the holdout is empty, so nothing can be compared")
    version = str(version)
    from model_bundle.outputs import point_forecast

    output = _predict(settings, model_name, version, holdout, dataset.entity_column)
    challenger_mae, challenger_by_entity = holdout_errors(point_forecast(output), holdout, dataset)
    coverage = holdout_coverage(output, holdout, dataset)
    baseline_forecasts = {name: b.predict(holdout) for name, b in baselines(dataset).items()}
    scored = {name: holdout_errors(f, holdout, dataset) for name, f in baseline_forecasts.items()}
    same_as = tuple(name for name, f in baseline_forecasts.items() if np.array_equal(f, point_forecast(output)))
    baseline_maes = {name: mae for name, (mae, _) in scored.items()}
    # The decision is on scale-free errors: each series' MAE over its own scale, averaged over series.
    scales = holdout_scales(holdout, dataset)
    challenger_mase, challenger_mase_by_entity = scaled(challenger_by_entity, scales)
    baseline_mases = {name: scaled(by_entity, scales)[0] for name, (_, by_entity) in scored.items()}
    hardest = min(baseline_mases, key=baseline_mases.__getitem__)
    baseline_mae, baseline_by_entity = scored[hardest]
    seasonal = scored["seasonal naive"][1]
    losing = [e for e, mae in challenger_by_entity.items() if mae > seasonal[e]]

    start, end = holdout[EVENT_TIMESTAMP].min(), holdout[EVENT_TIMESTAMP].max()
    champion = _champion_on_holdout(settings, dataset, model_name, version, holdout, scales)
    current, judged, saw_holdout = champion.version, champion.judged, champion.saw_holdout
    champion_mae, champion_mase, champion_by_entity = champion.mae, champion.mase, champion.mae_by_entity
    min_improvement = dataset.promotion.min_improvement
    passed, reasons = decide(
        challenger_mase, baseline_mases, champion_mase, min_improvement, measure="MASE", same_as=same_as
    )
    reasons.append(
        f"{len(losing)} of {len(challenger_by_entity)} series worse than seasonal naive"
        + (f" ({', '.join(sorted(losing)[:5])}{', ...' if len(losing) > 5 else ''})" if losing else "")
    )
    tolerance = dataset.promotion.coverage_tolerance
    covered, coverage_reason = coverage_check(coverage, tolerance)
    passed = passed and covered
    if coverage_reason is not None:
        reasons.append(coverage_reason)
    if current is not None and judged != current:
        reasons.append(f"the champion v{current} is judged by its evaluated fit v{judged}")
    if saw_holdout:
        reasons.append(f"the champion v{current} was trained on part of this holdout")
    decision = GateDecision(
        passed=passed,
        reason="; ".join(reasons),
        version=version,
        challenger_mae=challenger_mae,
        baseline_mae=baseline_mae,
        baseline=hardest,
        baseline_maes=baseline_maes,
        champion_version=current,
        champion_mae=champion_mae,
        min_improvement=min_improvement,
        champion_bound=None if champion_mase is None else champion_mase * (1 - min_improvement),
        holdout_rows=len(holdout),
        holdout_start=start.isoformat(),
        holdout_end=end.isoformat(),
        challenger_mae_by_entity=challenger_by_entity,
        champion_mae_by_entity=champion_by_entity,
        baseline_mae_by_entity=baseline_by_entity,
        champion_trained_on_holdout=saw_holdout,
        challenger_mase=challenger_mase,
        baseline_mase=baseline_mases[hardest],
        baseline_mases=baseline_mases,
        champion_mase=champion_mase,
        challenger_mase_by_entity=challenger_mase_by_entity,
        series_worse_than_seasonal_naive=len(losing) / len(challenger_by_entity),
        coverage=coverage,
        coverage_tolerance=tolerance,
    )
    _record(settings, model_name, decision)
    log.info("%s v%s champion/challenger gate %s: %s", model_name, version, _word(passed), decision.reason)
    return decision


# MLflow's most metrics in one log_batch call.
METRICS_PER_BATCH = 1000


def per_entity(values: dict[str, float]) -> dict[str, float]:
    """``values`` of each entity, as metrics of their own up to
    :data:`~model_registry.tracking.ENTITY_METRICS_UP_TO` entities (every entity's are in the
    decision's file), none past it."""
    from model_registry.tracking import ENTITY_METRICS_UP_TO

    return values if len(values) <= ENTITY_METRICS_UP_TO else {}


def _word(passed: bool) -> str:
    return "passed" if passed else "failed"


def _record(settings: Settings, model_name: str, decision: GateDecision) -> None:
    """Metrics and the decision file on the challenger's run; decision and thresholds as version tags."""
    from mlflow.entities import Metric

    mlflow_client = client(settings)
    run_id = str(mlflow_client.get_model_version(model_name, decision.version).run_id)
    metrics = {
        "holdout_mae": decision.challenger_mae,
        "holdout_baseline_mae": decision.baseline_mae,
        "holdout_mase": decision.challenger_mase,
        "holdout_baseline_mase": decision.baseline_mase,
        "holdout_series_worse_than_seasonal_naive": decision.series_worse_than_seasonal_naive,
        "gate_min_improvement": decision.min_improvement,
        "gate_champion_challenger_passed": float(decision.passed),
        **{f"holdout_mae_{entity}": value for entity, value in per_entity(decision.challenger_mae_by_entity).items()},
        **{f"holdout_{name.replace(' ', '_')}_mae": value for name, value in decision.baseline_maes.items()},
        **{f"holdout_coverage_{key}": value for key, value in decision.coverage.items()},
    }
    if decision.champion_mae is not None and decision.champion_bound is not None:
        metrics["holdout_champion_mae"] = decision.champion_mae
        metrics["holdout_champion_mase"] = decision.champion_mase or 0.0
        metrics["gate_champion_bound"] = decision.champion_bound
        metrics.update({f"holdout_champion_mae_{e}": v for e, v in per_entity(decision.champion_mae_by_entity).items()})
    stamp = int(time.time() * 1000)
    listed = [Metric(key, float(value), stamp, 0) for key, value in metrics.items()]
    for start in range(0, len(listed), METRICS_PER_BATCH):
        mlflow_client.log_batch(run_id, metrics=listed[start : start + METRICS_PER_BATCH])
    mlflow_client.log_dict(run_id, decision.as_dict(), GATE_ARTIFACT)
    tags = {
        "gate_champion_challenger": _word(decision.passed),
        "gate_champion_challenger_reason": decision.reason,
        "holdout_window": f"{decision.holdout_start}/{decision.holdout_end}",
        "holdout_mae": f"{decision.challenger_mae:.6g}",
        "holdout_baseline_mae": f"{decision.baseline_mae:.6g}",
        "holdout_mase": f"{decision.challenger_mase:.6g}",
        "holdout_baseline": decision.baseline,
        "holdout_champion_version": decision.champion_version or "",
        "holdout_champion_mae": "" if decision.champion_mae is None else f"{decision.champion_mae:.6g}",
        "gate_min_improvement": str(decision.min_improvement),
    }
    for key, text in tags.items():
        mlflow_client.set_model_version_tag(model_name, decision.version, key, text)


def holdout_of(settings: Settings, dataset: DatasetConfig, logical_date: date) -> pd.DataFrame:
    """The holdout of a date's training window, rebuilt from Feast (when no run wrote it to a file)."""
    from feature_store.training_set import get_training_set, split_holdout

    return split_holdout(get_training_set(settings, dataset, logical_date), dataset)[1]
