"""Replay days of a dataset through the DAGs, one simulated day after another.

Each simulated day ``D``:

1. reveals the raw source up to the end of ``D`` (copies of the source files that stop there, which
   the simulation's copy of the dataset config points to: no later row exists yet);
2. runs what the scheduler runs after the day ends: ``ingest_<name>`` for the interval of ``D``, then
   the DAGs its Assets start (``forecast_<name>``, then ``score_<name>``, ``drift_monitor_<name>``,
   ``nightly_backtest_<name>``), each judging ``D``; a retraining the drift monitor triggers runs with
   the conf it was triggered with. On the embedded default each DAG runs in turn with ``dag.test()``;
   on the simulation's servers (faults, or ``--servers``) Airflow's own scheduler runs them
   (:mod:`simulation.scheduler`): the ingest is triggered over REST with its logical date and the
   rest is Airflow's, its retries and recovery included; a run that failed for good is cleared, as
   an operator would, and the report says which heals were whose;
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
from simulation.scheduler import Airflow, Run
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
# The DAGs of the daily loop that Airflow's scheduler runs (the others stay paused).
SCHEDULED = ("ingest", "forecast", "score", "drift_monitor", "nightly_backtest")
# Consumers of a day's data, by the DAG whose success starts them (through its Asset).
CONSUMERS = {"ingest": ("forecast", "drift_monitor", "nightly_backtest"), "forecast": ("score",)}
SETTLE_SECONDS = 3600.0  # a day's runs, retries and a retraining included


def _has(faults: list[Fault], kind: str) -> bool:
    return any(f.kind == kind for f in faults)


class Simulation:
    """The DAGs of one dataset, run in order day after day on a home of their own (on the servers of
    ``stack`` when given, else on the embedded default)."""

    def __init__(self, home: Path, dataset_config: Path, retrain_trials: int = 0, stack: Stack | None = None,
                 retry_delay: float | None = None):  # fmt: skip
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
        servers = {**stack.environment(), **stack.metadata_environment()} if stack is not None else {}
        if retry_delay is not None:
            servers["MLOPS_TASK_RETRY_DELAY_SECONDS"] = str(retry_delay)
        prepare_environment(home, self.source.config, servers)
        get_settings.cache_clear()
        self.settings = get_settings()
        self.dataset = DatasetConfig.from_yaml(self.source.config, self.settings)
        self.name = self.dataset.name
        self.airflow: Airflow | None = None
        if stack is not None:  # Airflow's scheduler runs the days
            scheduled = [*(self.dag_id(kind) for kind in SCHEDULED), f"retrain_{self.name}_forecaster"]
            self.airflow = stack.start_airflow(dict(os.environ), scheduled)
        else:
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
        self.champions: set[str] = set()
        self.faults: list[Fault] = []
        self.refusals: dict[str, dict[str, bool]] = {}  # a bad day: what stood after its refusal
        self.day_champion: str | None = None  # the champion as the day began (a refusal must keep it)
        self.load: LoadRun | None = None  # the service's load, once it stopped
        self.operator_acts: list[dict[str, str]] = []  # runs the simulation cleared, as an operator

    def dag_id(self, kind: str) -> str:
        return f"{kind}_{self.name}"

    def task_ids(self, kind: str) -> list[str]:
        return sorted(self.dags[self.dag_id(kind)].task_ids)

    def run_dag(self, dag_id: str, **kwargs: Any) -> dict[str, str | None]:
        """One run of ``dag_id`` (``dag.test()``'s arguments), by Airflow's scheduler where it runs the
        days, else with ``dag.test()``; the state of each of its tasks."""
        if self.airflow is not None:
            return self._run_on_scheduler(dag_id, kwargs.get("logical_date"), kwargs.get("run_conf"))
        # What the DAGs' libraries print (Feast's materialization, Airflow's task output) goes to a log.
        with (self.home / "dags.log").open("a") as log_file, contextlib.redirect_stdout(log_file):
            run = self.dags[dag_id].test(**kwargs)
        states = {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}
        # A run whose tasks never ran (e.g. dated before the DAG's start) did nothing: no success.
        ran = any(state in ("success", "failed", "upstream_failed") for state in states.values())
        states["__run__"] = str(run.state) if ran else "nothing ran"
        self._note_champion()
        return states

    def _run_on_scheduler(
        self, dag_id: str, logical_date: datetime | None, conf: dict[str, Any] | None
    ) -> dict[str, str | None]:
        """Trigger a run over REST and wait until it, and what it started, finished."""
        assert self.airflow is not None
        after = self.airflow.metadata.newest_run()
        run_id = f"simulation__{dag_id}__{after + 1}"
        self.airflow.trigger(dag_id, run_id, logical_date, conf)
        runs = self.settle(after)
        run = next(r for r in runs if r.dag_id == dag_id and r.run_id == run_id)
        states: dict[str, str | None] = {
            task: state for task, (state, _) in self.airflow.metadata.tasks(dag_id, run_id).items()
        }
        states["__run__"] = run.state
        self._note_champion()
        return states

    def settle(self, after: int) -> list[Run]:
        """Wait until every DAG run newer than run id ``after`` finished and none is still owed (each
        consumer of a DAG that succeeded has a run started after it); those runs."""
        assert self.airflow is not None
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            runs = self.airflow.metadata.runs_since(after)
            if all(r.finished for r in runs) and not self._owed(runs):
                return runs
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runs after {after} did not settle: {runs}")
            time.sleep(1.0)

    def _owed(self, runs: list[Run]) -> list[str]:
        """The consumer DAGs that a successful run's Asset must still start."""
        owed = []
        for producer, consumers in CONSUMERS.items():
            done = [r for r in runs if r.dag_id == self.dag_id(producer) and r.state == "success"]
            if not done:
                continue
            for consumer in consumers:
                if not any(r.dag_id == self.dag_id(consumer) and r.id > done[-1].id for r in runs):
                    owed.append(self.dag_id(consumer))
        return owed

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
        at_one = datetime.combine(day + timedelta(days=1), clock(1), tzinfo=UTC)  # the daily run after the day
        if self.airflow is not None:
            failed, retrains = self._day_on_scheduler(day, at_one, today)
        else:
            failed, retrains = self._day_with_dag_test(day, at_one)
        promotions = forced = 0
        after = reading(self.champion)
        if after is not None and after != self.day_champion:  # only a retraining moves the champion
            promotions = 1
            by_force = functools.partial(readings.promoted_by_force, self.settings, self.model_name, after)
            forced = int(reading(by_force))
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
            champion_version=after,
            failed_dags=failed,
            wall_s=round(time.monotonic() - started, 1),
            faults=[f.kind for f in today],
        )

    def _day_with_dag_test(self, day: date, logical_date: datetime) -> tuple[list[str], int]:
        """The day's DAGs in the order their Assets would start them, each with ``dag.test()``; a
        retraining the drift monitor triggered runs with the conf it was triggered with. The DAGs
        that failed, and the retrainings."""
        midnight = datetime.combine(day, clock(), tzinfo=UTC)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("ingest", {"logical_date": logical_date}),
            ("forecast", {}),
            ("score", {}),
            ("drift_monitor", {"logical_date": midnight}),
            ("nightly_backtest", {}),
        ]
        failed: list[str] = []
        retrains = 0
        for kind, kwargs in steps:
            states = self.run_dag(self.dag_id(kind), **kwargs)
            if states.pop("__run__") != "success":
                failed.append(self.dag_id(kind))
                if kind == "ingest":
                    break  # no data, no consumer: the Assets would not have started them
            if kind == "drift_monitor" and states.get("trigger_retraining") == "success":
                self.run_dag(f"retrain_{self.name}_forecaster", run_conf=self._triggered_conf(day))
                retrains += 1
        return failed, retrains

    def _day_on_scheduler(self, day: date, logical_date: datetime, faults: list[Fault]) -> tuple[list[str], int]:
        """The day as Airflow's scheduler runs it: the ingest triggered over REST, its consumers
        started by their Assets, with the day's faults striking their tasks. A run that failed for
        good is cleared once the fault is over, as an operator would (at most :data:`MAX_ATTEMPTS`
        runs); each fault records whose heal it was. The DAGs that ended failed, and the retrainings."""
        assert self.airflow is not None
        after = self.airflow.metadata.newest_run()
        for fault in faults:
            fault.attempts = 1
        with contextlib.ExitStack() as watches:
            for fault in faults:
                watches.enter_context(strikes.strike(self, fault, day))
            self.airflow.trigger(self.dag_id("ingest"), f"day__{day.isoformat()}", logical_date)
            runs = self.settle(after)
            for _ in range(MAX_ATTEMPTS - 1):
                failed = [r for r in _latest(runs).values() if r.state == "failed"]
                if not failed:
                    break
                strikes.bitten([f for f in faults if any(r.dag_id == self.dag_id(f.dag) for r in failed)])
                strikes.after_failure(self, day, faults)
                for run in failed:
                    self.airflow.clear(run.dag_id, run.run_id)
                    kind = run.dag_id.removesuffix(f"_{self.name}")
                    self.operator_acts.append({"day": day.isoformat(), "dag": kind, "run_id": run.run_id})
                    for fault in faults:
                        if self.dag_id(fault.dag) == run.dag_id:
                            fault.attempts += 1
                            fault.healed_by = "operator"
                runs = self.settle(after)
        latest = _latest(runs)
        for fault in faults:
            hit = latest.get(self.dag_id(fault.dag))
            task = fault.hit_task or fault.task
            tasks = self.airflow.metadata.tasks(hit.dag_id, hit.run_id) if hit is not None else {}
            strikes.settled(fault, hit, tasks.get(task or "", (None, 0))[1])
        self._note_champion()
        failed_dags = sorted(dag_id for dag_id, run in latest.items() if run.state != "success")
        retrains = sum(r.dag_id == f"retrain_{self.name}_forecaster" for r in runs)
        return failed_dags, retrains

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
    retry_delay: float | None = None,
) -> dict[str, Any]:
    """Bootstrap, then ``days`` simulated days from ``start``, with a ``shift`` injected from the
    ``shift_day``-th simulated day (0: the first) on; the report (JSON-ready). ``retry_delay``: the
    platform's wait before a failed task's first retry, where not its default."""
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
        simulation = Simulation(home, dataset_config, retrain_trials, stack, retry_delay)
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


def _latest(runs: list[Run]) -> dict[str, Run]:
    """Each DAG's newest run of ``runs``."""
    return {run.dag_id: run for run in sorted(runs, key=lambda r: r.id)}


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
