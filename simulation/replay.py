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
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import yaml

from core.dataset import DatasetConfig, Layout
from core.settings import PROJECT_ROOT, Settings
from core.windows import end_of
from simulation.stack import BUCKET, Stack

if TYPE_CHECKING:
    from simulation.faults import Fault

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    faults: list[str] = field(default_factory=list)  # the faults that struck the day


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
    dataset config reads (with a :class:`Shift` injected, when one is asked for).

    The copies are local files, or objects of an S3 bucket when ``s3`` (a client of S3 itself, as the
    source's producer writes) and ``bucket`` are given.
    """

    def __init__(
        self,
        dataset: DatasetConfig,
        original: Path,
        folder: Path,
        settings: Settings,
        s3: Any = None,
        bucket: str | None = None,
    ):
        from data_pipeline.sources import read_bytes

        self.dataset, self.folder, self.s3, self.bucket = dataset, folder, s3, bucket
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

    def _uri(self, key: str) -> str:
        if self.s3 is not None:
            return f"s3://{self.bucket}/sources/{self.paths[key].name}"
        return str(self.paths[key])

    def _write_config(self, original: Path) -> Path:
        raw = yaml.safe_load(original.read_text())
        if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
            raw["source"]["uris"] = {key: self._uri(key) for key in self.paths}
        else:
            raw["source"]["uri"] = self._uri("all")
        path = self.folder.parent / original.name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def first_day(self) -> date:
        return min(s.min() for s in self.stamps.values()).date()

    def last_day(self) -> date:
        return max(s.max() for s in self.stamps.values()).date()

    def reveal(self, day: date, corrupt: bool = False) -> None:
        """Every source file as it would be at the end of ``day``; with ``corrupt``, the day's rows of
        the first file arrive with three bad values of the target (two far out of the dataset's value
        range, one missing), as a faulty export would deliver them."""
        end = pd.Timestamp(end_of(day))
        for index, (key, frame) in enumerate(self.frames.items()):
            known = frame[self.stamps[key] < end]
            if corrupt and index == 0:
                known = known.copy()
                rows = known.index[self.stamps[key][known.index] >= end - pd.Timedelta(days=1)]
                target = self.dataset.target
                known[target] = known[target].astype("float64")
                high = self.dataset.quality.value_ranges.get(target, (0.0, 1e6))[1]
                known.loc[rows[:2], target] = 10 * abs(high) + 1000.0
                known.loc[rows[2:3], target] = np.nan
            buffer = io.BytesIO()
            if self.dataset.source.format == "parquet":
                known.to_parquet(buffer, index=False)
            else:
                known.to_csv(buffer, index=False)
            self._publish(key, buffer.getvalue())

    def _publish(self, key: str, data: bytes) -> None:
        if self.s3 is not None:
            self.s3.put_object(Bucket=self.bucket, Key=f"sources/{self.paths[key].name}", Body=data)
        else:
            from core.files import write_atomically_bytes

            write_atomically_bytes(data, self.paths[key])

    def day_rows(self, day: date) -> pd.DataFrame:
        """The source's rows of ``day`` (shifted, when a shift is injected), every file's together, keyed
        by entity and timestamp: what the day's validated partition must hold."""
        start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
        parts = []
        for key, frame in self.frames.items():
            rows = frame[(self.stamps[key] >= start) & (self.stamps[key] < start + pd.Timedelta(days=1))].copy()
            rows["_stamp"] = self.stamps[key][rows.index]
            if self.dataset.source.layout is Layout.WIDE_PER_ENTITY:
                rows[self.dataset.entity_column] = key
            parts.append(rows)
        out = pd.concat(parts, ignore_index=True)
        out[self.dataset.entity_column] = out[self.dataset.entity_column].astype(str)
        return out


def default_start(dataset: DatasetConfig, first_day: date) -> date:
    """The first day that leaves a whole training window of history before it (a year when the
    window is unbounded)."""
    window = dataset.training.window or timedelta(days=365)
    return first_day + timedelta(days=window.days + 1)


def prepare_environment(home: Path, config: Path, servers: dict[str, str] | None = None) -> None:
    """Point the platform and Airflow at the simulation's home (before either reads its settings), and
    the platform at ``servers`` (``MLOPS_*`` variables of a :class:`simulation.stack.Stack`) if given."""
    own = {
        "MLOPS_HOME": str(home),
        "MLOPS_DATASETS_DIR": str(config.parent),
        "MLOPS_DATASET_CONFIG": str(config),
        **(servers or {}),
    }
    os.environ.update(
        {
            **own,
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # dag.test() warns once a second while a task waits for its retry: the report says it.
            "AIRFLOW__LOGGING__NAMESPACE_LEVELS": "airflow.sdk.definitions.dag=ERROR",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # the simulation's own bar is the one to read
        }
    )
    for key in [k for k in os.environ if k.startswith("MLOPS_") and k not in own]:
        os.environ.pop(key)  # a user's MLOPS_* (another profile, registry, database) is not the simulation's


# The table whose statements a PostgreSQL restart cuts: (database, table) per fault.
POSTGRES_TARGETS = {
    "restart_postgres_forecasts": ("forecasts", "forecasts"),
    "restart_postgres_mlflow": ("mlflow", "runs"),
}
UNFINISHED = ("running", "queued", "scheduled", "up_for_retry", "restarting", "deferred")
# Runs of one DAG a fault may cost: the first, and the reruns once the fault is over.
MAX_ATTEMPTS = 3
# How long the simulation's own reads of the stores keep trying while a server restarts.
READ_RETRY_SECONDS = 60.0


def _has(faults: list[Fault], kind: str) -> bool:
    return any(f.kind == kind for f in faults)


class Simulation:
    """The DAGs of one dataset, run in order day after day on a home of their own (on the servers of
    ``stack`` when given, else on the embedded default)."""

    def __init__(self, home: Path, dataset_config: Path, retrain_trials: int = 0, stack: Stack | None = None):
        import subprocess
        import sys

        from core.settings import get_settings

        if home.exists() and stack is None:
            shutil.rmtree(home)  # a simulation starts from nothing (a stack's owner emptied it first)
        home.mkdir(parents=True, exist_ok=True)
        self.home, self.retrain_trials, self.stack = home, retrain_trials, stack
        original = DatasetConfig.from_yaml(dataset_config)
        probe = Settings(home=home, dataset_config=dataset_config, _env_file=None)  # type: ignore[call-arg]
        s3 = stack.s3_client() if stack is not None else None
        self.source = RevealedSource(
            original, dataset_config.resolve(), home / "datasets" / "sources", probe, s3, BUCKET if s3 else None
        )
        prepare_environment(home, self.source.config, stack.environment() if stack is not None else None)
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
        self.airflow_db = home / "airflow" / "airflow.db"
        self.champions: set[str] = set()
        self.faults: list[Fault] = []
        self.refusals: dict[str, dict[str, bool]] = {}  # a bad day: what stood after its refusal

    def dag_id(self, kind: str) -> str:
        return f"{kind}_{self.name}"

    def task_ids(self, kind: str) -> list[str]:
        return sorted(self.dags[self.dag_id(kind)].task_ids)

    def run_dag(self, dag_id: str, **kwargs: Any) -> dict[str, str | None]:
        """One run of ``dag_id`` with ``dag.test()``; the state of each of its tasks."""
        # What the DAGs' libraries print (Feast's materialization, Airflow's task output) goes to a log.
        with (self.home / "dags.log").open("a") as log_file, contextlib.redirect_stdout(log_file):
            run = self.dags[dag_id].test(**kwargs)
        states = {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}
        # A run whose tasks never ran (e.g. dated before the DAG's start) did nothing: no success.
        ran = any(state in ("success", "failed", "upstream_failed") for state in states.values())
        states["__run__"] = str(run.state) if ran else "nothing ran"
        self._note_champion()
        return states

    def run_dag_killed(self, dag_id: str, kwargs: dict[str, Any], fault: Fault) -> None:
        """Run ``dag_id`` in a process of its own and SIGKILL it (its whole session) once
        ``fault.task`` is running; then fail what the dead process left unfinished, as Airflow's
        scheduler does when a task's heartbeat stops."""
        import signal
        import subprocess
        import sys

        from simulation.faults import TaskWatch

        encoded = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in kwargs.items()}
        argv = [sys.executable, "-m", "simulation.dagrun", dag_id, json.dumps(encoded)]
        with (self.home / "dags.log").open("ab") as log_file:
            child = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)

            def kill(task: str) -> None:
                fault.struck, fault.hit_task, fault.injected = time.time(), task, True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)

            with TaskWatch(self.airflow_db, dag_id, fault.task, ("running",), kill, fault.delay_s) as watch:
                after = watch.after
                while child.poll() is None and not watch.fired.is_set():
                    time.sleep(0.05)
                child.wait(timeout=600)
        if not fault.injected:
            fault.notes.append(f"{fault.task} never ran while the process lived (exit {child.returncode})")
            return
        self._fail_unfinished(dag_id, after)
        fault.ended = time.time()

    def _fail_unfinished(self, dag_id: str, after: int) -> None:
        from airflow.models import DagRun, TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState, TaskInstanceState

        with create_session() as session:
            for run in session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.id > after):
                for ti in session.query(TaskInstance).filter(
                    TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id, TaskInstance.state.in_(UNFINISHED)
                ):
                    ti.state = TaskInstanceState.FAILED
                run.state = DagRunState.FAILED

    def _note_champion(self) -> None:
        version = self._reading(self.champion)
        if version is not None:
            self.champions.add(version)

    def _reading(self, read: Callable[[], T]) -> T:
        """``read()``, tried again while a server it needs restarts (the simulation's own reads)."""
        deadline = time.monotonic() + READ_RETRY_SECONDS
        while True:
            try:
                return read()
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

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
        today = [f for f in self.faults if f.day == day.isoformat()]
        self.source.reveal(
            day - timedelta(days=1) if _has(today, "late_file") else day, corrupt=_has(today, "bad_rows")
        )
        failed: list[str] = []
        at_one = datetime.combine(day + timedelta(days=1), clock(1), tzinfo=UTC)  # the daily run after the day
        midnight = datetime.combine(day, clock(), tzinfo=UTC)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("ingest", {"logical_date": at_one}),
            ("forecast", {}),
            ("score", {}),
            ("drift_monitor", {"logical_date": midnight}),
            ("nightly_backtest", {}),
        ]
        retrains = promotions = 0
        for kind, kwargs in steps:
            dag_id = self.dag_id(kind)
            states = self.run_step(day, kind, kwargs, [f for f in today if f.dag == kind])
            if states.pop("__run__") != "success":
                failed.append(dag_id)
                if kind == "ingest":
                    break  # no data, no consumer: the Assets would not have started them
            if kind == "drift_monitor" and states.get("trigger_retraining") == "success":
                before = self._reading(self.champion)
                self.run_dag(f"retrain_{self.name}_forecaster", run_conf=self._triggered_conf(day))
                retrains += 1
                promotions += int(self._reading(self.champion) != before)
        realized, check = self._reading(lambda: self._realized(day)), self._reading(lambda: self._drift_check(day))
        return Day(
            day=day.isoformat(),
            rows_landed=self._rows_landed(day),
            forecasts_issued=self._reading(lambda: self._forecasts_issued(day)),
            forecasts_scored=self._reading(lambda: self._scored_on(day)),
            champion_mae=realized["champion_mae"],
            naive_mae=realized["naive_mae"],
            drift_share=check.get("share"),
            drift_state=check.get("state"),
            retrains=retrains,
            promotions=promotions,
            forced_promotions=0,  # a drift-triggered retraining never forces promotion
            champion_version=self._reading(self.champion),
            failed_dags=failed,
            wall_s=round(time.monotonic() - started, 1),
            faults=[f.kind for f in today],
        )

    def run_step(self, day: date, kind: str, kwargs: dict[str, Any], faults: list[Fault]) -> dict[str, str | None]:
        """One DAG of the day with the faults that strike it; run again, once a fault is over, as an
        operator clears a run that a fault failed (Airflow's own task retries come first)."""
        dag_id = self.dag_id(kind)
        states: dict[str, str | None] = {}
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with contextlib.ExitStack() as watches:
                if attempt == 1:
                    killer = next((f for f in faults if f.kind == "kill_task"), None)
                    for fault in faults:
                        if fault.kind != "kill_task":
                            watches.enter_context(self._strike(fault, day))
                    if killer is not None:
                        self.run_dag_killed(dag_id, kwargs, killer)
                        if killer.injected:
                            continue  # the killed run is failed: run it again
                states = self.run_dag(dag_id, **kwargs)
            for fault in faults:
                fault.attempts = attempt
            if states["__run__"] == "success":
                for fault in faults:
                    if fault.injected and fault.healed is None:
                        fault.healed = time.time()
                return states
            if not any(f.injected for f in faults):
                return states
            self._after_failure(day, kind, faults)
        return states

    def _strike(self, fault: Fault, day: date) -> contextlib.AbstractContextManager[Any]:
        """What makes ``fault`` happen during its DAG's run: a watch on its task, or the fault itself
        started now (S3's 503s, a late or bad file: already in place when the run starts)."""
        from simulation.faults import TaskWatch

        stack = self.stack
        now = time.time()
        if fault.kind in ("late_file", "bad_rows"):
            fault.struck, fault.injected = now, True
        if fault.kind == "s3_unavailable":
            assert stack is not None
            assert stack.s3 is not None
            stack.s3.unavailable_for(fault.seconds)
            fault.struck, fault.injected, fault.ended = now, True, now + fault.seconds
            return contextlib.nullcontext()
        if fault.kind == "late_file":

            def deliver(task: str) -> None:
                self.source.reveal(day)
                fault.ended, fault.hit_task = time.time(), task

            return TaskWatch(self.airflow_db, self.dag_id(fault.dag), fault.task, ("up_for_retry", "failed"), deliver)
        if fault.kind == "bad_rows":
            return contextlib.nullcontext()
        assert stack is not None, f"{fault.kind} needs the simulation's servers"

        def act(task: str) -> None:
            fault.struck, fault.hit_task, fault.injected = time.time(), task, True
            if fault.kind == "restart_redis":
                stack.redis.restart(fault.seconds)
            elif fault.kind.startswith("restart_postgres"):
                database, table = POSTGRES_TARGETS[fault.kind]
                if not stack.postgres.restart_in_a_write(database, table, stack.postgres.client_ports, 30.0):
                    fault.notes.append(f"no statement of the DAG on {database}.{table} was in flight at the restart")
            elif fault.kind == "kill_worker":
                self._kill_worker(fault)
            fault.ended = time.time()

        return TaskWatch(self.airflow_db, self.dag_id(fault.dag), fault.task, ("running",), act, fault.delay_s)

    def _kill_worker(self, fault: Fault) -> None:
        import signal

        assert self.stack is not None
        assert self.stack.service is not None
        service = self.stack.service
        before = service.worker_pids()
        if not before:
            fault.notes.append("no worker to kill")
            return
        victim = before[int(fault.delay_s * 100) % len(before)]
        started = service.workers_started()
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while service.workers_started() == started:  # until the supervisor's new worker has loaded the model
            if time.monotonic() > deadline:
                fault.notes.append("no new worker had started 120 s after the kill")
                return
            time.sleep(0.1)
        fault.healed = time.time()

    def _after_failure(self, day: date, kind: str, faults: list[Fault]) -> None:
        """Before running a DAG again: the corrected file delivered, a late one delivered, a server
        back; and, for a refused day, what stood after the refusal recorded."""
        for fault in faults:
            if fault.kind == "bad_rows" and fault.ended is None:
                self.refusals[day.isoformat()] = self._after_refusal(day)
                self.source.reveal(day)  # the corrected file
                fault.ended = time.time()
            if fault.kind == "late_file" and fault.ended is None:
                self.source.reveal(day)
                fault.ended = time.time()
            if fault.kind == "s3_unavailable" and fault.ended is not None:
                time.sleep(max(0.0, fault.ended - time.time()))

    def _after_refusal(self, day: date) -> dict[str, bool]:
        """What a refused day must have left as it was: nothing validated, no forecast of the day, the
        champion unchanged."""
        from core.objects import exists
        from core.partitions import validated_path

        return {
            "nothing_validated": not exists(validated_path(self.settings, self.dataset, day), self.settings),
            "no_forecast_of_the_day": self._reading(lambda: self._forecasts_issued(day)) == 0,
            "champion_kept": self._reading(self.champion) in self.champions,
        }

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
        **ledger(simulation, days),
    }


def ledger(simulation: Simulation, days: list[date]) -> dict[str, bool]:
    """What must hold whatever failed on the way: every day's validated partition holds exactly the
    source's rows of the day (a refused file's rows never, the corrected file's rows once); no
    training run became two versions; no champion failed a gate; a refused day left nothing behind."""
    from core.objects import exists, read_parquet
    from core.partitions import validated_path
    from model_registry.tracking import client

    settings, dataset = simulation.settings, simulation.dataset
    entity, stamp, target = dataset.entity_column, dataset.timestamp_column, dataset.target

    def day_landed_once(day: date) -> bool:
        location = validated_path(settings, dataset, day)
        if not exists(location, settings):
            return False
        frame = read_parquet(location, settings)
        stamps = pd.to_datetime(frame[stamp], utc=True)
        start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
        landed = frame[(stamps >= start) & (stamps < start + pd.Timedelta(days=1))]
        truth = simulation.source.day_rows(day)
        if len(landed) != len(truth) or landed.duplicated([entity, stamp]).any():
            return False
        keyed = landed.assign(_stamp=stamps[landed.index], **{entity: landed[entity].astype(str)})
        merged = truth.merge(keyed, on=[entity, "_stamp"], suffixes=("_source", "_landed"))
        return len(merged) == len(truth) and np.allclose(
            merged[f"{target}_source"].astype(float), merged[f"{target}_landed"].astype(float), equal_nan=False
        )

    mlflow = client(settings)
    versions = mlflow.search_model_versions(f"name = '{simulation.model_name}'")
    runs = [v.run_id for v in versions]
    dag_runs = [v.tags.get("dag_run_id") for v in versions if v.tags.get("dag_run_id")]
    gates = {str(v.version): v.tags for v in versions}
    failed_gate = {
        version for version, tags in gates.items()
        if tags.get("gate_champion_challenger") == "failed" or tags.get("gate_drift") == "blocked"
    }  # fmt: skip
    return {
        "every_day_landed_once": all(day_landed_once(d) for d in days),
        "one_version_per_training_run": len(runs) == len(set(runs)) and len(dag_runs) == len(set(dag_runs)),
        "champion_never_failed_a_gate": bool(simulation.champions) and not (simulation.champions & failed_gate),
        "refused_days_left_nothing": all(all(left.values()) for left in simulation.refusals.values()),
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
        *_fault_lines(report.get("faults")),
        "| check | passed |",
        "|---|---|",
        *[f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in report["checks"].items()],
        "",
        "| day | rows landed | forecasts issued | scored | champion MAE | naive MAE | drift share | drift | retrains | "
        "promotions | champion | wall s | failed DAGs | faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report["days"]:
        lines.append(
            f"| {d['day']} | {d['rows_landed']} | {d['forecasts_issued']} | {d['forecasts_scored']} | "
            f"{cell(d['champion_mae'])} | {cell(d['naive_mae'])} | {cell(d['drift_share'])} | "
            f"{d.get('drift_state') or '-'} | {d['retrains']} | "
            f"{d['promotions']} | v{d['champion_version']} | {d['wall_s']} | {', '.join(d['failed_dags']) or '-'} | "
            f"{', '.join(d.get('faults', [])) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def _fault_lines(faults: dict[str, Any] | None) -> list[str]:
    """The faults as they struck (seeded schedule), how long the loop took to heal from each, and the
    service's answers in each fault's window and outside them."""
    if not faults:
        return []

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    def share(stats: dict[str, Any]) -> str:
        return "-" if stats["ok_share"] is None else f"{100 * stats['ok_share']:.2f} %"

    lines = [
        f"Faults `{faults['option']}`, seed {faults['seed']} (the same seed, the same schedule):",
        "",
        "| day | fault | DAG | task it struck | struck (UTC) | healed after s | runs of the DAG | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in faults["schedule"]:
        lines.append(
            f"| {f['day']} | {f['kind']} | {f['dag']} | {cell(f['hit_task'] or f['task'])} | "
            f"{cell(f['struck'])} | {cell(f['heal_s'])} | {f['attempts']} | {'; '.join(f['notes']) or '-'} |"
        )
    service = faults["service"]
    lines += [
        "",
        "The service under load (answers with 2xx, and latency of the answered requests):",
        "",
        "| window | seconds | requests | 2xx | errors | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in service["per_fault"]:
        lines.append(
            f"| {w['day']} {w['kind']} | {w['seconds']} | {w['requests']} | {share(w)} | {w['errors']} | "
            f"{cell(w['p50_ms'])} | {cell(w['p99_ms'])} |"
        )
    for name in ("outside_faults", "outside_redis_outage", "overall"):
        w = service[name]
        lines.append(
            f"| {name.replace('_', ' ')} | - | {w['requests']} | {share(w)} | {w['errors']} | "
            f"{cell(w['p50_ms'])} | {cell(w['p99_ms'])} |"
        )
    return [*lines, ""]


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
    faults: str = "none",
    seed: int = 7,
    load_rate: float = 20.0,
    with_servers: bool = False,
) -> dict[str, Any]:
    """Bootstrap, then ``days`` simulated days from ``start``, with a ``shift`` injected from the
    ``shift_day``-th simulated day (0: the first) on; the report (JSON-ready)."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown shift {shift!r}; one of {SHIFTS}")
    if shift != "none" and not 0 <= shift_day < days:
        raise ValueError(f"the shift day must be one of the {days} simulated days (0..{days - 1}), not {shift_day}")
    from simulation.faults import kinds_of

    kinds = kinds_of(faults)
    if home.exists():
        shutil.rmtree(home)  # a simulation starts from nothing
    home.mkdir(parents=True)
    with contextlib.ExitStack() as servers:
        stack = None
        if kinds or with_servers:
            stack = servers.enter_context(Stack(home))
        simulation = Simulation(home, dataset_config, retrain_trials, stack)
        first = start or default_start(simulation.dataset, simulation.source.first_day())
        injected = Shift(shift, first + timedelta(days=shift_day), shift_entity) if shift != "none" else Shift()
        simulation.source.inject(injected)
        dates = [first + timedelta(days=n) for n in range(days)]
        if dates[-1] > simulation.source.last_day():
            raise ValueError(f"the source ends on {simulation.source.last_day()}: {days} days from {first} go past it")
        if kinds:
            from simulation.faults import plan

            simulation.faults = plan(kinds, [d.isoformat() for d in dates], seed, simulation.task_ids)
        simulation.bootstrap(first)
        results = []
        with contextlib.ExitStack() as loaded:  # the load's last answers are in its file once it has stopped
            if stack is not None:
                loaded.enter_context(_served_under_load(simulation, load_rate))
            for day in dates:
                result = simulation.simulate_day(day)
                results.append(result)
                if progress is not None:
                    progress(result)
        passed = checks(simulation, dates)
        report: dict[str, Any] = {
            "dataset": simulation.name,
            "start": first.isoformat(),
            "home": str(home),
            "days": [asdict(d) for d in results],
            "checks": passed,
            "summary": summary(results, passed),
            "drift_loop": drift_loop(simulation, results, injected),
        }
        if stack is not None:
            report["faults"] = fault_report(simulation, home / "servers" / "load.csv", seed, faults)
            report["checks"] |= report["faults"]["checks"]
            report["summary"]["all_checks_passed"] = all(report["checks"].values())
        return report


AVAILABILITY_GOALS = {"outside_redis_outage": 0.999, "overall": 0.99}


@contextlib.contextmanager
def _served_under_load(simulation: Simulation, rate: float) -> Iterator[Path]:
    """The forecasting service on the simulation's servers, under a steady open-loop load from a
    process of its own, for the duration of the block; yields the load's answer file."""
    import signal
    import subprocess
    import sys

    assert simulation.stack is not None
    service = simulation.stack.start_service(simulation.settings)
    answers = simulation.home / "servers" / "load.csv"
    argv = [sys.executable, "-m", "simulation.load", "--url", service.url, "--rate", str(rate),
            "--entities", ",".join(simulation.source.entities()), "--out", str(answers)]  # fmt: skip
    with (simulation.home / "servers" / "load.log").open("ab") as log_file:
        load = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield answers
    finally:
        load.send_signal(signal.SIGTERM)
        load.wait(timeout=60)


def fault_report(simulation: Simulation, answers: Path, seed: int, option: str) -> dict[str, Any]:
    """The faults as they struck, the time the loop took to heal from each, and the service's answers
    per fault window; with the checks they decide."""
    from simulation.faults import answered_stats, availability, first_ok_after, read_answers

    rows = read_answers(answers)
    for fault in simulation.faults:
        if fault.kind == "restart_redis" and fault.ended is not None:
            # Whole again once the service answers from the restarted Redis (and the DAG it hit ran).
            back = first_ok_after(rows, fault.ended)
            fault.healed = max(t for t in (fault.healed, back, fault.ended) if t is not None)
    served = availability(rows, simulation.faults)
    checks = {
        "every_fault_struck": all(f.injected for f in simulation.faults),
        "every_fault_healed": all(f.healed is not None for f in simulation.faults),
        **{
            f"availability_{name}_at_least_{goal:g}": (served[name]["ok_share"] or 0.0) >= goal
            for name, goal in AVAILABILITY_GOALS.items()
        },
    }
    return {
        "option": option,
        "seed": seed,
        "schedule": [
            {
                **asdict(f),
                "heal_s": f.heal_s,
                "struck": _clock(f.struck),
                "ended": _clock(f.ended),
                "healed": _clock(f.healed),
            }
            for f in simulation.faults
        ],
        "service": served,
        "checks": checks,
        "answers_before_first_fault": answered_stats(
            rows[rows[:, 0] < min((f.struck for f in simulation.faults if f.struck), default=float("inf"))]
        )
        if rows.size
        else None,
    }


def _clock(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
