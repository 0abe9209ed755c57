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

The source and its shifts are :mod:`simulation.source`; the faults as they strike a run,
:mod:`simulation.strikes`; the stores' readings, :mod:`simulation.readings`; the report and its
checks, :mod:`simulation.report`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from simulation import readings, strikes
from simulation.readings import reading
from simulation.report import Day, checks, drift_loop, fault_report, summary
from simulation.source import SHIFTS, RevealedSource, Shift, default_start
from simulation.stack import BUCKET, Stack

if TYPE_CHECKING:
    from simulation.faults import Fault


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


# Runs of one DAG a fault may cost: the first, and the reruns once the fault is over.
MAX_ATTEMPTS = 3


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
        self.day_champion: str | None = None  # the champion as the day began (a refusal must keep it)
        self.load: LoadRun | None = None  # the service's load, once it stopped

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

    def _note_champion(self) -> None:
        version = reading(self.champion)
        if version is not None:
            self.champions.add(version)

    def champion(self) -> str | None:
        return readings.champion(self.settings, self.model_name)

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
        self.day_champion = reading(self.champion)
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
        retrains = promotions = forced = 0
        for kind, kwargs in steps:
            dag_id = self.dag_id(kind)
            states = self.run_step(day, kind, kwargs, [f for f in today if f.dag == kind])
            if states.pop("__run__") != "success":
                failed.append(dag_id)
                if kind == "ingest":
                    break  # no data, no consumer: the Assets would not have started them
            if kind == "drift_monitor" and states.get("trigger_retraining") == "success":
                before = reading(self.champion)
                self.run_dag(f"retrain_{self.name}_forecaster", run_conf=self._triggered_conf(day))
                retrains += 1
                after = reading(self.champion)
                if after is not None and after != before:
                    promotions += 1
                    by_force = functools.partial(readings.promoted_by_force, self.settings, self.model_name, after)
                    forced += int(reading(by_force))
        settings, name = self.settings, self.name
        realized = reading(lambda: readings.realized(settings, name, day))
        check = reading(lambda: readings.drift_check(settings, day))
        return Day(
            day=day.isoformat(),
            rows_landed=readings.rows_landed(settings, self.dataset, day),
            forecasts_issued=reading(lambda: readings.forecasts_issued(settings, name, day)),
            forecasts_scored=reading(lambda: readings.scored_on(settings, name, day)),
            champion_mae=realized["champion_mae"],
            naive_mae=realized["naive_mae"],
            drift_share=check.get("share"),
            drift_state=check.get("state"),
            retrains=retrains,
            promotions=promotions,
            forced_promotions=forced,
            champion_version=reading(self.champion),
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
                            watches.enter_context(strikes.strike(self, fault, day))
                    if killer is not None:
                        strikes.run_dag_killed(self, dag_id, kwargs, killer)
                        if killer.injected:
                            continue  # the killed run is failed: run it again
                states = self.run_dag(dag_id, **kwargs)
            for fault in faults:
                fault.attempts = attempt
            if states["__run__"] == "success":
                for fault in faults:
                    if fault.injected and fault.healed is None:
                        fault.healed = time.time()
                    elif not fault.injected and fault.kind in strikes.DATA_FAULTS:
                        fault.notes.append("the run succeeded with the fault in place: it never bit")
                return states
            strikes.bitten(faults)
            if not any(f.injected for f in faults):
                return states
            strikes.after_failure(self, day, faults)
        return states

    def _triggered_conf(self, day: date) -> dict[str, Any]:
        from airflow.models import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            triggered = session.query(DagRun).filter(DagRun.run_id == f"drift__{day.isoformat()}").one()
            conf = dict(triggered.conf or {})
        return {**conf, "n_trials": self.retrain_trials}

    def post_promotion_maes(self, promoted: str, replaced: str, since: date) -> dict[str, tuple[float, float, int]]:
        """Per entity, the promoted champion's and the replaced one's MAE on the same targets since
        ``since`` (:func:`simulation.readings.post_promotion_maes`)."""
        return readings.post_promotion_maes(self.settings, self.name, promoted, replaced, since)


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


@contextlib.contextmanager
def _served_under_load(simulation: Simulation, rate: float) -> Iterator[Path]:
    """The forecasting service on the simulation's servers, under a steady open-loop load from a
    process of its own, for the duration of the block; yields the load's answer file. The service
    stops with the load, so that what it answered is in the forecast table when the checks read it."""
    import signal
    import subprocess
    import sys

    assert simulation.stack is not None
    service = simulation.stack.start_service(simulation.settings)
    answers = simulation.home / "servers" / "load.csv"
    answered = simulation.home / "servers" / "answered.jsonl"
    argv = [sys.executable, "-m", "simulation.load", "--url", service.url, "--rate", str(rate),
            "--entities", ",".join(simulation.source.entities()), "--out", str(answers),
            "--answered-out", str(answered)]  # fmt: skip
    started = time.time()
    with (simulation.home / "servers" / "load.log").open("ab") as log_file:
        load = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield answers
    finally:
        stopped = time.time()
        load.send_signal(signal.SIGTERM)
        load.wait(timeout=60)
        service.stop()
        simulation.load = LoadRun(rate, started, stopped, answered, load.returncode)


@dataclass(frozen=True)
class LoadRun:
    """The load the service was under: its rate, when it was started and stopped (Unix seconds), the
    file of its 2xx forecasts and the driver's exit code."""

    rate: float
    started: float
    stopped: float
    answered: Path
    exit_code: int | None
