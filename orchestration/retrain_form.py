"""The retraining DAG's trigger form, and the run's plan made from what it validated.

Each field is a JSON-schema ``Param``: Airflow validates a run's conf against the form before the run
exists (the UI's form and the REST API alike), and the UI shows each field's title and, under it,
its description, so the form explains itself. The first task of a run turns the validated values into
the run's :class:`~orchestration.plan.RunPlan`; no later task reads them again.

Kept free of heavy imports: ``dags/retrain.py`` builds the form at parse time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from airflow.sdk import Param

from core.dataset import DatasetConfig
from core.settings import get_settings
from orchestration.dags import NO_CONTROL_CHARACTERS
from orchestration.plan import RunPlan

# The trainable families of model_training.forecasters (that module is not imported at parse time).
FAMILIES = [
    "xgboost", "lightgbm", "nlinear", "dlinear", "auto_ets", "auto_theta", "auto_arima", "mstl",
    "random_walk_with_drift", "naive", "selection",
]  # fmt: skip


def form(history_end: date | None = None) -> dict[str, Param]:
    """The trigger form: one JSON-schema Param per field (Airflow validates a run's conf against it).

    Every field has a default that runs: the training window ends on the dataset's ``daily.history_end``
    when its source no longer grows (else on the run's date), and the reason may stay empty. Each field
    says what it does under its title, so the form explains itself.
    """
    end = history_end.isoformat() if history_end else None
    return {
        "model_family": Param(
            "xgboost",
            type="string",
            enum=FAMILIES,
            title="Model family",
            description="The trainable families (auto_* and random_walk_with_drift: one statsforecast model "
            "per series; selection: the dataset's candidates, chosen per series on their backtests); the "
            "gate compares the new version with the champion and the naive baselines whatever the family.",
        ),
        "horizon": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=10000,
            title="Horizon (steps; empty: config's)",
            description="Steps ahead each forecast covers; empty keeps the dataset config's horizon.",
        ),
        "n_trials": Param(
            5,
            type="integer",
            minimum=0,
            maximum=500,
            title="Optuna trials (0: no tuning)",
            description="Hyperparameter trials shared by the tuning workers; 0 trains the config's parameters.",
        ),
        "tuning_workers": Param(
            1,
            type="integer",
            minimum=1,
            maximum=16,
            title="Tuning workers (processes or pods on one study)",
            description="Workers that run the trials in parallel on one Optuna study.",
        ),
        "training_window_end": Param(
            end,
            type=["null", "string"],
            format="date",
            title="Training window end (YYYY-MM-DD; empty: the run's date)",
            description="The newest day the model trains on; the data must reach it (freshness check). "
            + (
                f"Defaults to {end}, the newest day of this dataset's source (daily.history_end)."
                if end
                else "Empty: the run's date."
            ),
        ),
        "holdout_start": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Holdout from (YYYY-MM-DD; empty: the config's holdout; the drift monitor sets its streak's "
            "first day, so the gate compares on the data after a change)",
            description="Champion and challenger are scored on the rows from this day on.",
        ),
        "force_promote": Param(
            False,
            type="boolean",
            title="Promote despite the drift gate",
            description="Overrides the drift gate only, never a model that loses to the champion or a baseline.",
        ),
        "reason": Param(
            None,
            type=["null", "string"],
            maxLength=500,
            pattern=NO_CONTROL_CHARACTERS,
            title="Why this run (recorded)",
            description="Recorded on the run and the registered version; may stay empty.",
        ),
    }


def plan_from_form(config: str | Path, params: Mapping[str, Any], dag_run_id: str, run_date: date) -> RunPlan:
    """The run's plan from the form's validated ``params``: the data date is the training window's end,
    else ``run_date`` (the run's logical date, or when it ran); an empty horizon is the config's.

    The whole source policy applies here (reading the config): a config that names a forbidden source
    stops the run before anything is read or written.
    """
    end, holdout = params.get("training_window_end"), params.get("holdout_start")
    dataset = DatasetConfig.from_yaml(config, get_settings())
    return RunPlan(
        dataset_config=str(config),
        dataset_name=dataset.name,
        logical_date=datetime.fromisoformat(end).date() if end else run_date,
        dag_run_id=dag_run_id,
        family=params["model_family"],
        horizon=int(params.get("horizon") or dataset.horizon),
        n_trials=int(params["n_trials"]),
        tuning_workers=int(params["tuning_workers"]),
        force_promote=bool(params["force_promote"]),
        reason=str(params.get("reason") or ""),
        holdout_start=datetime.fromisoformat(holdout).date() if holdout else None,
    )
