"""Champion/challenger gate: a new version must beat seasonal naive and the current champion.

Scores are read from the versions' own training runs (what was measured, not what a caller says).
The decision, both scores and the thresholds are set as tags on the challenger's version.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from configs.dataset import DatasetConfig
from configs.settings import Settings
from model_registry.registry import champion_version, training_scores
from model_registry.tracking import client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reason: str
    version: str
    challenger_mae: float
    baseline_mae: float
    champion_version: str | None
    champion_mae: float | None
    min_improvement: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _scores(settings: Settings, model_name: str, version: str) -> dict[str, float]:
    mlflow_client = client(settings)
    run_id = mlflow_client.get_model_version(model_name, version).run_id
    if not run_id:
        raise RuntimeError(f"{model_name} v{version} has no training run to read its scores from")
    return training_scores(mlflow_client.get_run(run_id))


def evaluate_challenger(settings: Settings, dataset: DatasetConfig, model_name: str, version: str) -> GateDecision:
    challenger = _scores(settings, model_name, version)
    min_improvement = dataset.promotion.min_improvement
    current = champion_version(settings, model_name)
    champion_mae = None
    if current is not None and current != version:
        champion_mae = _scores(settings, model_name, current)["backtest_mae"]
    mae, naive = challenger["backtest_mae"], challenger["baseline_mae"]
    reasons = []
    passed = mae < naive
    reasons.append(f"MAE {mae:.4f} {'<' if mae < naive else '>='} seasonal naive {naive:.4f}")
    if champion_mae is not None:
        bound = champion_mae * (1 - min_improvement)
        beats = mae <= bound
        passed = passed and beats
        reasons.append(
            f"{'<=' if beats else '>'} champion v{current} {champion_mae:.4f} x (1 - {min_improvement}) = {bound:.4f}"
        )
    else:
        reasons.append("no other champion: the baseline rule decides")
    decision = GateDecision(
        passed=passed,
        reason="; ".join(reasons),
        version=version,
        challenger_mae=mae,
        baseline_mae=naive,
        champion_version=current,
        champion_mae=champion_mae,
        min_improvement=min_improvement,
    )
    mlflow_client = client(settings)
    tags = {
        "gate_champion_challenger": "passed" if passed else "failed",
        "gate_champion_challenger_reason": decision.reason,
    }
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
    log.info(
        "%s v%s champion/challenger gate %s: %s",
        model_name,
        version,
        tags["gate_champion_challenger"],
        decision.reason,
    )
    return decision
