"""What a task works with: its dataset's settings and config, and for a retraining run, the run's plan.

The plan is the validated form of a DAG run's params. The first task makes it and every later task
gets it as an argument (a typed value over XCom), so all tasks of a run agree on the dataset, data
date, horizon, family and run key without reading params again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from core.dataset import DatasetConfig
from core.objects import join, write_object
from core.partitions import run_dir
from core.settings import Settings, get_settings


def run_key(dag_run_id: str) -> str:
    """A file-name-safe key of a DAG run id (run ids hold ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dag_run_id)


@dataclass(frozen=True)
class Scope:
    """The settings and dataset config a task runs with (MLflow is configured before any task runs:
    :func:`orchestration.dags.prepare_task`)."""

    settings: Settings
    dataset: DatasetConfig

    @property
    def model_name(self) -> str:
        return self.settings.model_name(self.dataset.name)


def scope(config: str | Path, horizon: int | None = None) -> Scope:
    """The process's settings and the dataset config at ``config`` (forecasting ``horizon`` steps)."""
    return Scope(get_settings(), DatasetConfig.from_yaml(config).with_horizon(horizon))


class RunPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_config: str
    dataset_name: str
    logical_date: date
    dag_run_id: str
    family: str = "xgboost"
    horizon: int = Field(ge=1)
    n_trials: int = 0
    tuning_workers: int = 1
    force_promote: bool = False
    reason: str = ""
    holdout_start: date | None = None  # the holdout begins here (a drifted streak's first day), not per config

    @property
    def key(self) -> str:
        return run_key(self.dag_run_id)

    @property
    def study(self) -> str:
        """The run's Optuna study: every tuning worker of the run (and a retry) joins this one."""
        return f"{self.dataset_name}-{self.family}-{self.key}"

    def scope(self) -> Scope:
        return scope(self.dataset_config, self.horizon)

    def run_dir(self, settings: Settings, dataset: DatasetConfig) -> Path:
        """This run's own folder under its data date's artifacts (the gates' reports)."""
        return run_dir(settings, dataset, self.logical_date) / "runs" / self.key

    def location(self, settings: Settings, dataset: DatasetConfig, name: str) -> str:
        """Where this run hands ``name`` over from task to task and pod: under the exchange prefix
        (``MLOPS_EXCHANGE_URI``) when the profile has one, else in the run's local folder."""
        if settings.exchange_uri:
            return join(settings.exchange_uri, dataset.name, self.logical_date.isoformat(), "runs", self.key, name)
        return str(self.run_dir(settings, dataset) / name)

    def published_dataset(self, settings: Settings, dataset: DatasetConfig) -> str:
        """The dataset config as the training processes read it: the worker's file where they share its
        filesystem, else a copy next to the run's other hand-overs (written again on a retry, the same).
        The copy is the file's config: the run's horizon goes in the command (``--horizon``), as it does
        with the file."""
        if not settings.exchange_uri:
            return self.dataset_config
        as_written = DatasetConfig.from_yaml(self.dataset_config, settings).to_yaml()
        return write_object(self.location(settings, dataset, "dataset.yaml"), as_written.encode(), settings)

    def _cli(self, command: str, dataset: str) -> list[str]:
        """The training CLI's arguments that every command of this run shares."""
        return [
            command,
            "--dataset", dataset,
            "--logical-date", self.logical_date.isoformat(),
            "--model", self.family,
            "--horizon", str(self.horizon),
        ]  # fmt: skip

    def tuning_commands(self, training_set: str, dataset: str) -> list[list[str]]:
        """One training-CLI argument list per tuning worker (at least one: it also closes an empty study);
        ``dataset``: where the config is read from (:meth:`published_dataset`)."""
        common = [*self._cli("tune", dataset), "--training-set", training_set]
        common += ["--trials", str(self.n_trials), "--study", self.study]
        return [[*common, "--worker", str(worker)] for worker in range(max(self.tuning_workers, 1))]

    def candidates_prefix(self, settings: Settings, dataset: DatasetConfig) -> str:
        """Where a selection run's candidate tasks hand their evaluations to the final training."""
        return self.location(settings, dataset, "candidates")

    def candidate_commands(
        self, training_set: str, dataset: str, candidates: list[str], prefix: str
    ) -> list[list[str]]:
        """For the ``selection`` family, one training-CLI argument list per candidate: each evaluates its
        candidate on the training set and writes the evaluation under ``prefix``; none for other families."""
        if self.family != "selection":
            return []
        common = [*self._cli("candidate", dataset), "--training-set", training_set, "--out", prefix]
        return [[*common, "--candidate", name] for name in candidates]

    def train_command(
        self,
        training_set: str,
        params_file: str,
        dataset: str,
        candidates: str | None = None,
        labelled: str | None = None,
    ) -> list[str]:
        """The final training's arguments: the best parameters on the whole training set, tagged with the
        DAG run so that registration finds the run it logged; a selection chooses among the evaluations
        under ``candidates``; ``labelled``: every labelled row, on which the model is refitted to serve."""
        command = [
            *self._cli("train", dataset),
            "--params-file", params_file,
            "--training-set", training_set,
            "--study", self.study,
            "--tag", f"dag_run_id={self.dag_run_id}",
        ]  # fmt: skip
        if self.family == "selection" and candidates is not None:
            command += ["--candidates", candidates]
        if labelled is not None:
            command += ["--labelled", labelled]
        return command
