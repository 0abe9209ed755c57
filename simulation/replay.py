"""Replay days of a dataset through the DAGs, one simulated day after another.

Each simulated day ``D``:

1. reveals the raw source up to the end of ``D`` (copies of the source files that stop there, which
   the simulation's copy of the dataset config points to: no later row exists yet);
2. runs, with ``dag.test()``, what the scheduler runs after the day ends: ``ingest_<name>`` for the
   interval of ``D``, then the DAGs its Assets start (``forecast_<name>``, then ``score_<name>``,
   ``drift_monitor_<name>``, ``nightly_backtest_<name>``), each judging ``D``; a retraining the drift
   monitor triggers runs with the conf it was triggered with;
3. reads what the day left in the stores: rows landed, forecasts issued and scored, the champion's
   and seasonal naive's realized MAE on the day's targets, the drift share, retrainings.

Before the first day the champion is trained (``retrain_<name>_forecaster`` for the day before the
start) and forecasts that day, so the first simulated day already scores forecasts. The checks at
the end are computed from the stores themselves (partitions, forecast table, scores), not from what
the DAGs reported.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from core.dataset import DatasetConfig, Layout
from core.settings import PROJECT_ROOT, Settings
from core.windows import end_of

log = logging.getLogger(__name__)


@dataclass
class Day:
    """What one simulated day did (one object of the report's ``days``)."""

    day: str
    rows_landed: int
    forecasts_issued: int
    forecasts_scored: int
    champion_mae: float | None
    naive_mae: float | None
    drift_share: float | None
    drift_state: str | None
    retrains: int
    promotions: int
    forced_promotions: int
    champion_version: str | None
    failed_dags: list[str] = field(default_factory=list)
    wall_s: float = 0.0


SHIFTS = ("none", "level", "scale", "level_scale", "daily_cycle")


@dataclass(frozen=True)
class Shift:
    """A change of regime injected into one entity's target from the start of a day on.

    ``level`` moves the target up by ``level`` of its standard deviations; ``scale`` widens its swings
    around its mean ``scale`` times; ``level_scale`` does both; ``daily_cycle`` adds a daily cycle of
    ``level`` standard deviations (peak at 06:00 UTC), a change of how the target moves. Mean and
    standard deviation are the entity's over the 28 days before the shift, so the change is the same
    size on any dataset. A model that forecasts changes from the current value absorbs a level and much
    of a scale change by itself; a new daily cycle it must learn.
    """

    kind: str = "none"
    start: date | None = None
    entity: str | None = None  # None: the first entity
    level: float = 2.0
    scale: float = 2.0

    def apply(self, frame: pd.DataFrame, stamps: pd.Series, rows: pd.Series, target: str) -> pd.DataFrame:
        """``frame`` with ``rows`` (one entity's) changed from the shift's start on."""
        if self.kind == "none" or self.start is None:
            return frame
        begin = pd.Timestamp(datetime.combine(self.start, clock(), tzinfo=UTC))
        after = rows & (stamps >= begin)
        before = frame.loc[rows & (stamps < begin) & (stamps >= begin - pd.Timedelta(days=28)), target]
        mean, std = float(before.mean()), float(before.std())
        out = frame.copy()
        values = out.loc[after, target].astype("float64")
        if self.kind in ("scale", "level_scale"):
            values = mean + self.scale * (values - mean)
        if self.kind in ("level", "level_scale"):
            values = values + self.level * std
        if self.kind == "daily_cycle":
            hours = stamps[after].dt.hour.to_numpy()
            values = values + self.level * std * np.sin(2 * np.pi * hours / 24)
        out.loc[after, target] = values
        return out


class RevealedSource:
    """The dataset's raw source files, revealed up to the end of a day into copies the simulation's
    dataset config reads (with a :class:`Shift` injected, when one is asked for)."""

    def __init__(self, dataset: DatasetConfig, original: Path, folder: Path, settings: Settings):
        from data_pipeline.sources import read_bytes

        self.dataset, self.folder = dataset, folder
        folder.mkdir(parents=True, exist_ok=True)
        uris = dataset.source.uris or {"all": str(dataset.source.uri)}
        self.frames: dict[str, pd.DataFrame] = {}
        self.stamps: dict[str, pd.Series] = {}
        self.paths: dict[str, Path] = {}
        for key, uri in uris.items():
            data = read_bytes(dataset.resolve_uri(uri), settings)
            if dataset.source.format == "parquet":
                frame = pd.read_parquet(io.BytesIO(data))
            else:  # exact floats: the revealed copy holds the same values as the source
                frame = pd.read_csv(io.BytesIO(data), float_precision="round_trip")
            stamps = pd.to_datetime(frame[dataset.timestamp_column], format=dataset.source.timestamp_format, utc=True)
            self.frames[key], self.stamps[key] = frame, stamps
            self.paths[key] = folder / f"{key}.{dataset.source.format}"
        self.shift: Shift = Shift()
        self.shifted_entity: str | None = None
        self.config = self._write_config(original)

    def entities(self) -> list[str]:
        if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
            return sorted(self.frames)
        return sorted(self.frames["all"][self.dataset.entity_column].astype(str).unique())

    def inject(self, shift: Shift) -> None:
        """Change the shifted entity's target in the frames the days are revealed from (before any
        day is revealed)."""
        self.shift = shift
        if shift.kind == "none":
            return
        entity = shift.entity or self.entities()[0]
        if entity not in self.entities():
            raise ValueError(f"no entity {entity!r} to shift; there are {self.entities()}")
        for key, frame in self.frames.items():
            if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
                rows = pd.Series(key == entity, index=frame.index)
            else:
                rows = frame[self.dataset.entity_column].astype(str) == entity
            self.frames[key] = shift.apply(frame, self.stamps[key], rows, self.dataset.target)
        self.shifted_entity = entity

    def _write_config(self, original: Path) -> Path:
        raw = yaml.safe_load(original.read_text())
        if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
            raw["source"]["uris"] = {key: str(path) for key, path in self.paths.items()}
        else:
            raw["source"]["uri"] = str(self.paths["all"])
        path = self.folder.parent / original.name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def first_day(self) -> date:
        return min(s.min() for s in self.stamps.values()).date()

    def last_day(self) -> date:
        return max(s.max() for s in self.stamps.values()).date()

    def reveal(self, day: date) -> None:
        """Every source file as it would be at the end of ``day``."""
        end = pd.Timestamp(end_of(day))
        for key, frame in self.frames.items():
            known = frame[self.stamps[key] < end]
            if self.dataset.source.format == "parquet":
                known.to_parquet(self.paths[key], index=False)
            else:
                known.to_csv(self.paths[key], index=False)


def default_start(dataset: DatasetConfig, first_day: date) -> date:
    """The first day that leaves a whole training window of history before it (a year when the
    window is unbounded)."""
    window = dataset.training.window or timedelta(days=365)
    return first_day + timedelta(days=window.days + 1)


def prepare_environment(home: Path, config: Path) -> None:
    """Point the platform and Airflow at the simulation's home (before either reads its settings)."""
    os.environ.update(
        {
            "MLOPS_HOME": str(home),
            "MLOPS_DATASETS_DIR": str(config.parent),
            "MLOPS_DATASET_CONFIG": str(config),
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # the simulation's own bar is the one to read
        }
    )
    for key in [k for k in os.environ if k.startswith("MLOPS_") and k not in _OWN]:
        os.environ.pop(key)  # a user's MLOPS_* (another profile, registry, database) is not the simulation's


_OWN = {"MLOPS_HOME", "MLOPS_DATASETS_DIR", "MLOPS_DATASET_CONFIG"}


class Simulation:
    """The DAGs of one dataset, run in order day after day on a home of their own."""

    def __init__(self, home: Path, dataset_config: Path, retrain_trials: int = 0):
        import subprocess
        import sys

        from core.settings import get_settings

        if home.exists():
            shutil.rmtree(home)  # a simulation starts from nothing
        home.mkdir(parents=True)
        self.home, self.retrain_trials = home, retrain_trials
        original = DatasetConfig.from_yaml(dataset_config)
        probe = Settings(home=home, dataset_config=dataset_config, _env_file=None)  # type: ignore[call-arg]
        self.source = RevealedSource(original, dataset_config.resolve(), home / "datasets" / "sources", probe)
        prepare_environment(home, self.source.config)
        get_settings.cache_clear()
        self.settings = get_settings()
        self.dataset = DatasetConfig.from_yaml(self.source.config, self.settings)
        self.name = self.dataset.name
        airflow = Path(sys.executable).parent / "airflow"
        subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
        from airflow.dag_processing.dagbag import DagBag

        from model_registry import tracking

        tracking.configure(self.settings)
        bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
        if bag.import_errors:
            raise RuntimeError(f"DAG import errors: {bag.import_errors}")
        self.dags = bag.dags
        self.model_name = self.settings.model_name(self.name)

    def run_dag(self, dag_id: str, **kwargs: Any) -> dict[str, str | None]:
        """One run of ``dag_id`` with ``dag.test()``; the state of each of its tasks."""
        # What the DAGs' libraries print (Feast's materialization, Airflow's task output) goes to a log.
        with (self.home / "dags.log").open("a") as log_file, contextlib.redirect_stdout(log_file):
            run = self.dags[dag_id].test(**kwargs)
        states = {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}
        # A run whose tasks never ran (e.g. dated before the DAG's start) did nothing: no success.
        ran = any(state in ("success", "failed", "upstream_failed") for state in states.values())
        states["__run__"] = str(run.state) if ran else "nothing ran"
        return states

    def champion(self) -> str | None:
        from model_registry.registry import champion_version

        return champion_version(self.settings, self.model_name)

    def bootstrap(self, start: date) -> None:
        """A champion trained on the day before the start, and that day's forecasts."""
        before = start - timedelta(days=1)
        self.source.reveal(before)
        conf = {"training_window_end": before.isoformat(), "n_trials": self.retrain_trials, "reason": "simulation"}
        states = self.run_dag(f"retrain_{self.name}_forecaster", run_conf=conf)
        if self.champion() is None:
            raise RuntimeError(f"the first training promoted no champion: {states}")
        self.run_dag(f"forecast_{self.name}")

    def simulate_day(self, day: date) -> Day:
        started = time.monotonic()
        self.source.reveal(day)
        failed: list[str] = []
        at_one = datetime.combine(day + timedelta(days=1), clock(1), tzinfo=UTC)  # the daily run after the day
        midnight = datetime.combine(day, clock(), tzinfo=UTC)
        steps: list[tuple[str, dict[str, Any]]] = [
            (f"ingest_{self.name}", {"logical_date": at_one}),
            (f"forecast_{self.name}", {}),
            (f"score_{self.name}", {}),
            (f"drift_monitor_{self.name}", {"logical_date": midnight}),
            (f"nightly_backtest_{self.name}", {}),
        ]
        retrains = promotions = 0
        for dag_id, kwargs in steps:
            states = self.run_dag(dag_id, **kwargs)
            if states.pop("__run__") != "success":
                failed.append(dag_id)
                if dag_id.startswith("ingest_"):
                    break  # no data, no consumer: the Assets would not have started them
            if dag_id.startswith("drift_monitor_") and states.get("trigger_retraining") == "success":
                before = self.champion()
                self.run_dag(f"retrain_{self.name}_forecaster", run_conf=self._triggered_conf(day))
                retrains += 1
                promotions += int(self.champion() != before)
        realized, check = self._realized(day), self._drift_check(day)
        return Day(
            day=day.isoformat(),
            rows_landed=self._rows_landed(day),
            forecasts_issued=self._forecasts_issued(day),
            forecasts_scored=self._scored_on(day),
            champion_mae=realized["champion_mae"],
            naive_mae=realized["naive_mae"],
            drift_share=check.get("share"),
            drift_state=check.get("state"),
            retrains=retrains,
            promotions=promotions,
            forced_promotions=0,  # a drift-triggered retraining never forces promotion
            champion_version=self.champion(),
            failed_dags=failed,
            wall_s=round(time.monotonic() - started, 1),
        )

    def _triggered_conf(self, day: date) -> dict[str, Any]:
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            triggered = session.query(DagRun).filter(DagRun.run_id == f"drift__{day.isoformat()}").one()
            conf = dict(triggered.conf or {})
        return {**conf, "n_trials": self.retrain_trials}

    def _rows_landed(self, day: date) -> int:
        from core.objects import exists, read_parquet
        from core.partitions import landing_path

        path = landing_path(self.settings, self.dataset, day)
        if not exists(path, self.settings):
            return 0
        stamps = pd.to_datetime(read_parquet(path, self.settings)[self.dataset.timestamp_column], utc=True)
        start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
        return int(((stamps >= start) & (stamps < start + pd.Timedelta(days=1))).sum())

    def _forecasts_issued(self, day: date) -> int:
        from forecast_store import store

        return len(store.issued(self.settings, self.name, data_date=day))

    def _scored_on(self, day: date) -> int:
        from forecast_store import store

        return sum(1 for r in store.scored(self.settings, self.name) if r["actuals_date"] == day)

    def _realized(self, day: date) -> dict[str, float | None]:
        from forecast_store import store
        from forecast_store.schema import BATCH

        rows = [r for r in store.scored(self.settings, self.name, day, day) if r["source"] == BATCH]
        fair = [r for r in rows if r["naive_error"] is not None]
        if not fair:
            return {"champion_mae": None, "naive_mae": None}
        return {
            "champion_mae": sum(abs(r["error"]) for r in fair) / len(fair),
            "naive_mae": sum(abs(r["naive_error"]) for r in fair) / len(fair),
        }

    def _drift_check(self, day: date) -> dict[str, Any]:
        """The day's drift check: its drift share and state (drifted, steady, ...), from its MLflow run."""
        from model_registry.tracking import client

        mlflow = client(self.settings)
        experiment = mlflow.get_experiment_by_name(self.settings.mlflow_experiment)
        if experiment is None:
            return {}
        runs = mlflow.search_runs(
            [experiment.experiment_id],
            f"tags.job = 'drift_monitor' and tags.check_date = '{day.isoformat()}'",
            max_results=1,
        )
        if not runs:
            return {}
        share = runs[0].data.metrics.get("drift_share")
        return {"share": None if share is None else float(share), "state": runs[0].data.tags.get("state")}

    def post_promotion_maes(self, promoted: str, replaced: str, since: date) -> dict[str, tuple[float, float, int]]:
        """Per entity: (new champion's MAE, old champion's MAE, targets) on the targets both forecast
        from the same features since ``since``: the new one's batch forecasts, the old one's shadow
        forecasts."""
        from forecast_store import store
        from forecast_store.schema import BATCH, SHADOW

        frame = pd.DataFrame(store.scored(self.settings, self.name))
        if frame.empty:
            return {}
        frame = frame[frame["data_date"] >= since]
        keys = ["entity_id", "data_date", "step"]
        new = frame[(frame["source"] == BATCH) & (frame["model_version"] == promoted)].set_index(keys)["error"].abs()
        old = frame[(frame["source"] == SHADOW) & (frame["model_version"] == replaced)].set_index(keys)["error"].abs()
        both = pd.concat({"new": new, "old": old}, axis=1, join="inner")
        return {
            str(entity): (float(rows["new"].mean()), float(rows["old"].mean()), len(rows))
            for entity, rows in both.groupby(level="entity_id")
        }


def drift_loop(simulation: Simulation, days: list[Day], shift: Shift) -> dict[str, Any]:
    """How the drift loop answered the injected shift (or, without one, how often it fired anyway)."""

    def first(predicate: Callable[[Day], bool], after: str | None) -> str | None:
        return next((d.day for d in days if (after is None or d.day >= after) and predicate(d)), None)

    shift_day = shift.start.isoformat() if shift.kind != "none" and shift.start else None
    first_drifted = first(lambda d: d.drift_state == "drifted", shift_day)
    trigger = first(lambda d: d.retrains > 0, shift_day)
    promotion = first(lambda d: d.promotions > 0, trigger) if trigger else None
    loop: dict[str, Any] = {
        "shift": shift.kind,
        "shift_entity": simulation.source.shifted_entity,
        "shift_day": shift_day,
        "first_drifted_day": first_drifted,
        "trigger_day": trigger,
        "promotion_day": promotion,
        "forced": any(d.forced_promotions for d in days),
        "drift_triggered_retrains": sum(d.retrains for d in days),
        "days_to_first_drifted": _days_between(shift_day, first_drifted),
        "days_from_trigger_to_promotion": _days_between(trigger, promotion),
        "post_shift_champion_mae": None,
        "post_shift_old_champion_mae": None,
        "post_shift_targets": 0,
    }
    if promotion is not None:
        index = [d.day for d in days].index(promotion)
        replaced = days[index - 1].champion_version if index else None
        promoted = days[index].champion_version
        if replaced and promoted:
            by_entity = simulation.post_promotion_maes(promoted, replaced, date.fromisoformat(promotion))
            # The change's targets are the shifted entity's; the others show what replacing the
            # model for every entity cost or gained where nothing changed.
            new, old, targets = by_entity.get(simulation.source.shifted_entity or "", (None, None, 0))
            loop |= {
                "promoted_version": promoted,
                "replaced_version": replaced,
                "post_shift_champion_mae": new,
                "post_shift_old_champion_mae": old,
                "post_shift_targets": targets,
                "post_promotion_by_entity": {
                    entity: {"champion_mae": n, "old_champion_mae": o, "targets": t}
                    for entity, (n, o, t) in by_entity.items()
                },
            }
    return loop


def _days_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def checks(simulation: Simulation, days: list[date]) -> dict[str, bool]:
    """What the stores say about the simulated days, each a named yes/no."""
    from core.columns import EVENT_TIMESTAMP
    from core.objects import exists, read_parquet
    from core.partitions import landing_path, validated_path
    from feature_store.features import feature_table_location
    from forecast_store import store
    from forecast_store.schema import BATCH

    settings, dataset = simulation.settings, simulation.dataset
    keys = [dataset.entity_column, dataset.timestamp_column]

    def unique(location: str, columns: list[str]) -> bool:
        return exists(location, settings) and not read_parquet(location, settings)[columns].duplicated().any()

    issued = store.issued(settings, dataset.name)
    entities = sorted({r.entity_id for r in issued})
    per_day: dict[date, list[tuple[str, int]]] = {}
    for r in issued:
        per_day.setdefault(r.data_date, []).append((r.entity_id, r.step))
    expected = sorted((e, h) for e in entities for h in range(1, dataset.horizon + 1))
    scored = store.scored(settings, dataset.name)
    scored_ids = [r["forecast_id"] for r in scored]
    horizon_end = end_of(days[-1])
    batch_scores = [r for r in scored if r["source"] == BATCH and r["naive_error"] is not None]
    mae = sum(abs(r["error"]) for r in batch_scores) / max(len(batch_scores), 1)
    naive = sum(abs(r["naive_error"]) for r in batch_scores) / max(len(batch_scores), 1)
    return {
        "no_missing_partition": all(
            exists(landing_path(settings, dataset, d), settings)
            and exists(validated_path(settings, dataset, d), settings)
            for d in days
        ),
        "no_duplicate_partition": all(unique(validated_path(settings, dataset, d), keys) for d in days)
        and unique(feature_table_location(settings, dataset), [dataset.entity_column, EVENT_TIMESTAMP]),
        "one_forecast_per_entity_per_day": all(sorted(per_day.get(d, [])) == expected for d in days),
        "every_due_forecast_scored_once": len(scored_ids) == len(set(scored_ids))
        and store.count_due_unscored(settings, dataset.name, horizon_end) == 0,
        "champion_beats_naive": bool(batch_scores) and mae < naive,
    }


def summary(days: list[Day], passed: dict[str, bool]) -> dict[str, Any]:
    """The report's totals: realized MAE over the period and the median wall time of a plain day."""
    scored = [d for d in days if d.champion_mae is not None and d.naive_mae is not None]
    plain = sorted(d.wall_s for d in days if d.retrains == 0)
    return {
        "days": len(days),
        "champion_mae": sum(d.champion_mae for d in scored) / len(scored) if scored else None,  # type: ignore[misc]
        "naive_mae": sum(d.naive_mae for d in scored) / len(scored) if scored else None,  # type: ignore[misc]
        "retrains": sum(d.retrains for d in days),
        "promotions": sum(d.promotions for d in days),
        "median_wall_s_without_retraining": plain[len(plain) // 2] if plain else None,
        "max_wall_s_without_retraining": plain[-1] if plain else None,
        "all_checks_passed": all(passed.values()),
    }


def markdown(report: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    totals = report["summary"]
    lines = [
        f"# Simulation of the daily loop: {report['dataset']}, {report['start']} + {totals['days']} days",
        "",
        f"Command: `{report['command']}`. Each day: the source revealed up to its end, then `dag.test()` of "
        "ingest, forecast, score, drift monitor and nightly backtest (and a retraining when the drift monitor "
        "triggers one).",
        "",
        f"- realized MAE over the period: champion {cell(totals['champion_mae'])}, seasonal naive "
        f"{cell(totals['naive_mae'])}",
        f"- retrainings {totals['retrains']}, promotions {totals['promotions']}",
        f"- wall time of a day without retraining: median {cell(totals['median_wall_s_without_retraining'])} s, "
        f"max {cell(totals['max_wall_s_without_retraining'])} s",
        "",
        *_loop_lines(report.get("drift_loop", {})),
        "| check | passed |",
        "|---|---|",
        *[f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in report["checks"].items()],
        "",
        "| day | rows landed | forecasts issued | scored | champion MAE | naive MAE | drift share | drift | retrains | "
        "promotions | champion | wall s | failed DAGs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report["days"]:
        lines.append(
            f"| {d['day']} | {d['rows_landed']} | {d['forecasts_issued']} | {d['forecasts_scored']} | "
            f"{cell(d['champion_mae'])} | {cell(d['naive_mae'])} | {cell(d['drift_share'])} | "
            f"{d.get('drift_state') or '-'} | {d['retrains']} | "
            f"{d['promotions']} | v{d['champion_version']} | {d['wall_s']} | {', '.join(d['failed_dags']) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def _loop_lines(loop: dict[str, Any]) -> list[str]:
    """The drift loop's table (what a shift led to, or the false alarms of a run without one)."""
    if not loop:
        return []
    keys = ["shift", "shift_entity", "shift_day", "first_drifted_day", "trigger_day", "promotion_day", "forced",
            "drift_triggered_retrains", "days_to_first_drifted", "days_from_trigger_to_promotion",
            "post_shift_champion_mae", "post_shift_old_champion_mae", "post_shift_targets"]  # fmt: skip
    rows = [f"| {key} | {'-' if loop.get(key) is None else loop[key]} |" for key in keys]
    lines = ["| drift loop | |", "|---|---|", *rows, ""]
    if by_entity := loop.get("post_promotion_by_entity"):
        lines += [
            f"From the promotion on, v{loop['promoted_version']} (batch) against v{loop['replaced_version']} "
            "(shadow), same targets:",
            "",
            "| entity | new champion MAE | old champion MAE | targets |",
            "|---|---|---|---|",
            *(
                f"| {entity} | {m['champion_mae']:.3f} | {m['old_champion_mae']:.3f} | {m['targets']} |"
                for entity, m in by_entity.items()
            ),
            "",
        ]
    return lines


def simulate(
    home: Path,
    dataset_config: Path,
    start: date | None,
    days: int,
    retrain_trials: int = 0,
    progress: Callable[[Day], None] | None = None,
    shift: str = "none",
    shift_day: int = 0,
    shift_entity: str | None = None,
) -> dict[str, Any]:
    """Bootstrap, then ``days`` simulated days from ``start``, with a ``shift`` injected from the
    ``shift_day``-th simulated day (0: the first) on; the report (JSON-ready)."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; one of {SHIFTS}")
    if shift != "none" and not 0 <= shift_day < days:
        raise ValueError(f"the shift day must be one of the {days} simulated days (0..{days - 1}), not {shift_day}")
    simulation = Simulation(home, dataset_config, retrain_trials)
    first = start or default_start(simulation.dataset, simulation.source.first_day())
    injected = Shift(shift, first + timedelta(days=shift_day), shift_entity) if shift != "none" else Shift()
    simulation.source.inject(injected)
    dates = [first + timedelta(days=n) for n in range(days)]
    if dates[-1] > simulation.source.last_day():
        raise ValueError(f"the source ends on {simulation.source.last_day()}: {days} days from {first} go past it")
    simulation.bootstrap(first)
    results = []
    for day in dates:
        result = simulation.simulate_day(day)
        results.append(result)
        if progress is not None:
            progress(result)
    passed = checks(simulation, dates)
    return {
        "dataset": simulation.name,
        "start": first.isoformat(),
        "home": str(home),
        "days": [asdict(d) for d in results],
        "checks": passed,
        "summary": summary(results, passed),
        "drift_loop": drift_loop(simulation, results, injected),
    }
