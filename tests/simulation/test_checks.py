"""The simulation's checks fail when what they check did not happen: each is broken here and seen false."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from core.dataset import DatasetConfig
from core.settings import Settings
from simulation.faults import Fault
from tests.utils.data import SYNTHETIC_END, write_dataset

DAY = SYNTHETIC_END - timedelta(days=1)


@pytest.fixture
def local(tmp_path: Path) -> tuple[Settings, DatasetConfig]:
    config = write_dataset(tmp_path / "dataset")
    settings = Settings(home=tmp_path / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    return settings, DatasetConfig.from_yaml(config)


def test_refused_days_are_expected_from_the_fault_plan() -> None:
    from simulation.report import refusals_left_nothing

    bad, late = DAY.isoformat(), (DAY - timedelta(days=1)).isoformat()
    plan = [Fault("bad_rows", bad, "ingest", None, 0.0), Fault("late_file", late, "ingest", None, 0.0)]
    assert not refusals_left_nothing(plan, {}), "validation accepted the bad file: no refusal was seen"
    left = {"nothing_validated": True, "no_features_of_the_day": True, "champion_kept": True}
    assert refusals_left_nothing(plan, {DAY.isoformat(): left})
    assert not refusals_left_nothing(plan, {DAY.isoformat(): {**left, "champion_kept": False}})
    assert refusals_left_nothing([], {}), "no bad file planned, none expected"


def test_a_data_fault_is_struck_only_when_its_run_failed_on_it() -> None:
    from simulation import strikes
    from simulation.scheduler import Run

    succeeded = Run(7, "ingest_synthetic", "day__x", "success", "manual", ended=1000.0)
    accepted = Fault("bad_rows", DAY.isoformat(), "ingest", None, 0.0)
    strikes.settled(accepted, succeeded, 1)
    assert not accepted.injected, "validation took the bad file: the fault never bit"
    assert accepted.healed is None
    assert accepted.notes == ["the run succeeded with the fault in place: it never bit"]
    refused = Fault("bad_rows", DAY.isoformat(), "ingest", None, 0.0)
    strikes.bitten([refused])
    assert refused.injected


def test_a_heal_is_airflows_unless_an_operator_cleared_the_run() -> None:
    from simulation import strikes
    from simulation.report import heals_automatic
    from simulation.scheduler import Run

    succeeded = Run(7, "ingest_synthetic", "day__x", "success", "manual", ended=1000.0)
    killed = Fault("kill_task", DAY.isoformat(), "ingest", "validate", 0.0, injected=True, struck=990.0)
    strikes.settled(killed, succeeded, 2)
    assert (killed.healed, killed.healed_by, killed.tries) == (1000.0, "automatic", 2)
    assert killed.heal_s == 10.0
    survived = Fault("kill_scheduler", DAY.isoformat(), "ingest", "validate", 0.0, injected=True, struck=990.0)
    survived.hit_task = "validate"
    strikes.settled(survived, succeeded, 1)
    assert not survived.injected, "the task's only try succeeded: the kill never bit"
    assert survived.healed is None
    failed = Run(8, "forecast_synthetic", "x", "failed", "asset_triggered", ended=1000.0)
    unhealed = Fault("kill_task", DAY.isoformat(), "forecast", "issue_forecasts", 0.0, injected=True, struck=990.0)
    strikes.settled(unhealed, failed, 3)
    assert (unhealed.healed, unhealed.healed_by) == (None, None)

    bad = Fault("bad_rows", DAY.isoformat(), "ingest", "ingest", 0.0, injected=True, healed_by="operator")
    cleared = [{"day": DAY.isoformat(), "dag": "ingest", "run_id": "day__x"}]
    assert heals_automatic([killed, bad], cleared)
    assert not heals_automatic([killed, bad], [*cleared, {"day": DAY.isoformat(), "dag": "score", "run_id": "y"}]), (
        "an operator cleared a run no bad file called for"
    )
    killed.healed_by = "operator"
    assert not heals_automatic([killed, bad], cleared), "the killed task healed only by an operator's clear"
    killed.healed_by, bad.healed_by = "automatic", "automatic"
    assert not heals_automatic([killed, bad], []), "a bad file that healed by itself: validation let it through"


def test_a_refusal_that_changed_the_champion_or_built_the_days_features_is_seen(
    local: tuple[Settings, DatasetConfig],
) -> None:
    from core.columns import EVENT_TIMESTAMP
    from feature_store.features import feature_table_location
    from simulation.strikes import after_refusal

    settings, dataset = local
    simulation = SimpleNamespace(settings=settings, dataset=dataset, champion=lambda: "1", day_champion="1")
    assert after_refusal(simulation, DAY) == {  # type: ignore[arg-type]
        "nothing_validated": True,
        "no_features_of_the_day": True,
        "champion_kept": True,
    }
    simulation.champion = lambda: "2"  # promoted on the refused day
    table = Path(feature_table_location(settings, dataset))
    table.parent.mkdir(parents=True, exist_ok=True)
    stamps = pd.date_range(datetime.combine(DAY, datetime.min.time(), tzinfo=UTC), periods=3, freq="h")
    pd.DataFrame({dataset.entity_column: "site_0", EVENT_TIMESTAMP: stamps, "temp": 1.0}).to_parquet(table)
    assert after_refusal(simulation, DAY) == {  # type: ignore[arg-type]
        "nothing_validated": True,
        "no_features_of_the_day": False,
        "champion_kept": False,
    }


def test_an_entity_never_forecast_is_missed(local: tuple[Settings, DatasetConfig]) -> None:
    from simulation.report import one_forecast_per_entity_per_day

    _, dataset = local
    source = SimpleNamespace(day_rows=lambda day: pd.DataFrame({dataset.entity_column: ["site_0", "site_1"]}))
    steps = range(1, dataset.horizon + 1)
    both = [SimpleNamespace(data_date=DAY, entity_id=e, step=h) for e in ("site_0", "site_1") for h in steps]
    assert one_forecast_per_entity_per_day(both, source, dataset, [DAY])
    only_one = [row for row in both if row.entity_id == "site_0"]
    assert not one_forecast_per_entity_per_day(only_one, source, dataset, [DAY])
    assert not one_forecast_per_entity_per_day([*both, both[0]], source, dataset, [DAY]), "a step twice"


def test_a_forced_promotion_is_read_from_the_versions_tags(local: tuple[Settings, DatasetConfig]) -> None:
    from model_registry import tracking
    from model_registry.tracking import client
    from simulation.readings import promoted_by_force

    settings, _ = local
    tracking.configure(settings)
    mlflow = client(settings)
    mlflow.create_registered_model("m")
    forced = mlflow.create_model_version("m", "file:///nowhere", tags={"gate_drift": "forced"}).version
    passed = mlflow.create_model_version("m", "file:///nowhere", tags={"gate_drift": "passed"}).version
    assert promoted_by_force(settings, "m", str(forced))
    assert not promoted_by_force(settings, "m", str(passed))


def test_a_load_that_stopped_early_or_was_starved_did_not_run_throughout() -> None:
    import numpy as np

    from simulation.report import load_ran_throughout

    started, stopped, rate = 1000.0, 1100.0, 10.0
    sent = np.arange(started + 0.05, stopped, 1 / rate)
    rows = np.column_stack([sent, np.full(sent.shape, 0.01), np.full(sent.shape, 200)])
    assert load_ran_throughout(rows, started, stopped, rate)
    assert not load_ran_throughout(rows[sent < started + 50], started, stopped, rate), "the driver died midway"
    assert not load_ran_throughout(rows[::2], started, stopped, rate), "half the requests: starved"
    assert not load_ran_throughout(rows[sent > started + 20], started, stopped, rate), "it started late"
    assert not load_ran_throughout(np.empty((0, 3)), started, stopped, rate)


def test_every_answered_forecast_must_be_in_the_table_once_with_its_values(
    local: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    import json

    from forecast_store import store
    from forecast_store.schema import ONLINE
    from simulation.report import answered_forecasts_stored

    settings, dataset = local
    store.upgrade(settings)
    event = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)

    def rows(entity: str, values: list[float], answers: int) -> list[store.ForecastRow]:
        return [
            store.ForecastRow(dataset.name, entity, DAY, event, h, event + timedelta(hours=h), v, "m", "1", ONLINE,
                              answers=answers)
            for h, v in enumerate(values, start=1)
        ]  # fmt: skip

    def answered(*lines: tuple[str, list[float]]) -> Path:
        path = tmp_path / "answered.jsonl"
        body = [{"index": i, "entity_id": e, "model_version": "1", "feature_event_time": event.isoformat(),
                 "values": v} for i, (e, v) in enumerate(lines)]  # fmt: skip
        path.write_text("".join(json.dumps(line) + "\n" for line in body))
        return path

    store.append(settings, rows("site_0", [1.0, 2.0], answers=2))
    twice = answered(("site_0", [1.0, 2.0]), ("site_0", [1.0, 2.0]))
    assert answered_forecasts_stored(settings, dataset.name, twice, unanswered=0)
    assert not answered_forecasts_stored(settings, dataset.name, answered(("site_1", [1.0, 2.0])), 0), "not stored"
    assert not answered_forecasts_stored(settings, dataset.name, answered(("site_0", [1.0, 2.5])), 0), "other values"
    thrice = answered(*[("site_0", [1.0, 2.0])] * 3)
    assert not answered_forecasts_stored(settings, dataset.name, thrice, 0), "answered 3 times, stored with 2"
    once = answered(("site_0", [1.0, 2.0]))
    assert not answered_forecasts_stored(settings, dataset.name, once, 0), "one answer more than the load saw"
    assert answered_forecasts_stored(settings, dataset.name, once, 1), "a request the load gave up on"
    assert not answered_forecasts_stored(settings, dataset.name, tmp_path / "none.jsonl", 0), "nothing answered"


def test_a_day_is_over_only_once_each_successful_runs_consumers_started() -> None:
    from simulation.replay import Simulation
    from simulation.scheduler import Run

    simulation = Simulation.__new__(Simulation)  # the loop's bookkeeping, without its servers
    simulation.name = "synthetic"
    ingest = Run(5, "ingest_synthetic", "day__x", "success", "manual")
    consumers = [Run(i, f"{kind}_synthetic", "a", "success", "asset_triggered")
                 for i, kind in ((6, "forecast"), (7, "drift_monitor"), (8, "nightly_backtest"))]  # fmt: skip
    assert simulation._owed([ingest]) == ["forecast_synthetic", "drift_monitor_synthetic", "nightly_backtest_synthetic"]
    assert simulation._owed([ingest, *consumers]) == ["score_synthetic"], "the forecasts' Asset starts scoring"
    assert simulation._owed([ingest, *consumers, Run(9, "score_synthetic", "b", "success", "asset_triggered")]) == []
    refused = Run(5, "ingest_synthetic", "day__x", "failed", "manual")
    assert simulation._owed([refused]) == [], "a failed ingest starts nothing"
    stale = Run(4, "forecast_synthetic", "old", "success", "asset_triggered")  # started before the ingest
    assert "forecast_synthetic" in simulation._owed([stale, ingest])


def test_a_tracking_server_restart_bites_only_where_a_task_retried_against_it(tmp_path: Path) -> None:
    from simulation.scheduler import Run
    from simulation.strikes import retried_through

    run = Run(3, "nightly_backtest_synthetic", "asset_triggered__x", "success", "asset_triggered")
    folder = tmp_path / f"dag_id={run.dag_id}" / f"run_id={run.run_id}" / "task_id=backtest"
    folder.mkdir(parents=True)
    log = folder / "attempt=1.log"
    log.write_text('{"event": "Logged a fold", "level": "info"}\n')
    assert not retried_through(tmp_path, run, 35355), "the restart fell between the task's requests"
    log.write_text(
        "Retrying (Retry(total=6, connect=6, read=7, redirect=7, status=7)) after connection broken by "
        "'NewConnectionError(\"HTTPConnection(host='127.0.0.1', port=35355): Failed to establish a new connection\n"
    )
    assert retried_through(tmp_path, run, 35355)
    assert not retried_through(tmp_path, run, 3535), "another server's port"


def test_a_kill_bites_only_where_the_try_had_not_reported_its_end() -> None:
    """A short task may end, and report it, between the watch seeing it run and the kill: such a kill
    missed (the watch then waits for another task), whatever it killed."""
    import subprocess
    import sys

    from simulation import strikes
    from simulation.scheduler import Run

    run = Run(1, "ingest_synthetic", "day__2024-03-29", "running", "manual")
    for kind, recorded, bit in [
        ("kill_scheduler", "running", True),  # its supervisor died before it could report: orphaned
        ("kill_scheduler", "success", False),
        ("kill_task", "up_for_retry", True),  # the supervisor reported the killed try failed
        ("kill_task", "success", False),
    ]:
        acts: list[str] = []
        tasks = SimpleNamespace(tasks=lambda dag_id, run_id, state=recorded: {"materialize": (state, 1)})
        airflow = SimpleNamespace(
            metadata=tasks,
            kill=lambda component, acts=acts: acts.append(f"kill {component}"),
            start_component=lambda component, acts=acts: acts.append(f"start {component}"),
        )
        task = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            assert strikes.kill(airflow, kind, run, "materialize", task.pid) is bit, (kind, recorded)  # type: ignore[arg-type]
            assert task.wait(timeout=10) == -9, "the task's process is killed either way"
        finally:
            task.kill()
        assert acts == (["kill scheduler", "start scheduler"] if kind == "kill_scheduler" else []), kind
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not strikes.kill(airflow, "kill_task", run, "materialize", gone.pid), "a process that had ended"  # type: ignore[arg-type]
