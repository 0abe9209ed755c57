"""A retraining run's plan: the validated form of a DAG run's params, passed between tasks.

Tasks exchange this small JSON-able dict over XCom instead of re-reading params, so every task of
a run agrees on the dataset, data date, horizon and run key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

from configs.dataset import DatasetConfig
from configs.settings import Settings, get_settings


def run_key(dag_run_id: str) -> str:
    """A file-name-safe key of a DAG run id (run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dag_run_id)


@dataclass(frozen=True)
class RunPlan:
    dataset_config: str
    logical_date: date
    dag_run_id: str
    family: str = "xgboost"
    horizon: int | None = None
    n_trials: int = 0
    tuning_workers: int = 1
    force_promote: bool = False
    reason: str = ""

    @property
    def key(self) -> str:
        return run_key(self.dag_run_id)

    def study(self, dataset: DatasetConfig) -> str:
        """The run's Optuna study: every tuning worker of the run (and a retry) joins this one."""
        return f"{dataset.name}-{self.family}-{self.key}"

    def tuning_commands(self, training_set: str) -> list[list[str]]:
        """One training-CLI argument list per tuning worker (at least one: it also closes an empty study)."""
        common = ["tune", "--dataset", self.dataset_config, "--logical-date", self.logical_date.isoformat()]
        common += ["--model", self.family, "--training-set", training_set]
        common += ["--horizon", str(self.horizon)] if self.horizon is not None else []
        common += ["--trials", str(self.n_trials), "--study", self.study(DatasetConfig.from_yaml(self.dataset_config))]
        return [[*common, "--worker", str(worker)] for worker in range(max(self.tuning_workers, 1))]

    def load(self) -> tuple[Settings, DatasetConfig]:
        dataset = DatasetConfig.from_yaml(self.dataset_config).with_horizon(self.horizon)
        return get_settings(), dataset

    def run_dir(self, settings: Settings, dataset: DatasetConfig) -> Path:
        from data_pipeline.validation import run_dir

        return run_dir(settings, dataset, self.logical_date) / "runs" / self.key

    def to_dict(self) -> dict[str, Any]:
        """The plan, plus derived names that templates pull (``study``)."""
        study = self.study(DatasetConfig.from_yaml(self.dataset_config))
        return {**asdict(self), "logical_date": self.logical_date.isoformat(), "study": study}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunPlan:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**{**values, "logical_date": date.fromisoformat(str(data["logical_date"]))})
