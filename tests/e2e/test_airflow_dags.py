"""Every DAG runs end to end with ``dag.test()`` (in-process, SQLite) on a generated dataset."""

import re
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from core.dataset import DatasetConfig
from orchestration.plan import run_key
from tests.utils.browser import screenshot
from tests.utils.data import SYNTHETIC_END, synthetic_frame, with_regime_change, write_dataset
from tests.utils.platform import PlatformEnv, run_data_chain
from tests.utils.servers import free_port, server_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.scenario]

CONF = {"training_window_end": SYNTHETIC_END.isoformat(), "n_trials": 2, "tuning_workers": 2, "reason": "test run"}
SHIFTED_END = SYNTHETIC_END + timedelta(days=10)  # the newest day once a regime change arrived


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _states(run) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    return {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}


@pytest.fixture(scope="module")
def retrained(
    tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, pushgateway: str
) -> Iterator[tuple[PlatformEnv, dict[str, str | None], str]]:
    # One drift report per check: the MLflow UI test looks at the champion's.
    with PlatformEnv(tmp_path_factory.mktemp("dags"), drift_reports=1, MLOPS_PUSHGATEWAY_URL=pushgateway) as env:
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        yield env, _states(run), run.run_id


def test_retraining_runs_every_step_and_promotes(retrained) -> None:  # type: ignore[no-untyped-def]
    from model_registry.tracking import CHALLENGER, CHAMPION, client

    env, states, run_id = retrained
    assert states.pop("skip_promotion") == "skipped"
    assert states.pop("evaluate_candidate") == "skipped", "no candidates to evaluate outside a selection"
    assert set(states.values()) == {"success"}, states
    mlflow = client(env.settings())
    champion = mlflow.get_model_version_by_alias("synthetic_forecaster", CHAMPION)
    challenger = mlflow.get_model_version_by_alias("synthetic_forecaster", CHALLENGER)
    # the gates judged the challenger; what serves is the same model refitted on every labelled row
    assert champion.tags["evaluated_version"] == str(challenger.version) != str(champion.version)
    assert challenger.tags["refit_version"] == str(champion.version)
    assert champion.run_id == challenger.run_id
    assert champion.tags["data_window"].split("/")[1] > challenger.tags["data_window"].split("/")[1]
    assert challenger.tags["gate_decision"] == "promoted"
    assert champion.tags["dag_run_id"] == run_id
    assert champion.tags["gate_champion_challenger"] == "passed"
    assert champion.tags["gate_drift"] == "passed"
    assert champion.tags["gate_decision"] == "promoted"
    lineage = {"data_window", "dataset_fingerprint", "ge_result", "drift_share", "code_version", "dag_run_id"}
    assert lineage <= set(champion.tags)
    assert champion.tags["ge_result"].startswith("passed: ")
    run = mlflow.get_run(champion.run_id)
    assert run.data.tags["dag_run_id"] == run_id
    assert {"backtest_mae", "baseline_mae", "drift_share"} <= set(run.data.metrics)
    # two tuning workers filled one study; the final model was trained with its best trial and logs it
    assert states["tune"] == "success"
    assert run.data.tags["tuning_study"] == f"synthetic-xgboost-{run_key(run_id)}"
    assert run.data.metrics["tuning_trials_complete"] + run.data.metrics.get("tuning_trials_pruned", 0) == 2


def test_retried_registration_and_promotion_change_nothing(retrained) -> None:  # type: ignore[no-untyped-def]
    from model_registry.promotion import promote_version
    from model_registry.registry import champion_version, register_refit, register_run_of
    from model_registry.tracking import client

    env, _, run_id = retrained
    settings = env.settings()
    before = champion_version(settings, "synthetic_forecaster")
    again = register_run_of(settings, "synthetic_forecaster", "dag_run_id", run_id)
    assert again.version == "1", "the version the gates judged, never the run's refit"
    served = register_refit(settings, "synthetic_forecaster", again)
    assert served.version == before == "2"
    assert len(client(settings).search_model_versions("name = 'synthetic_forecaster'")) == 2
    assert promote_version(settings, "synthetic_forecaster", served.version, "retry") == before
    assert champion_version(settings, "synthetic_forecaster") == before


def test_materialization_dag_is_idempotent(retrained) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    dag = env.dag("materialize_synthetic_features")
    for _ in range(2):
        assert set(_states(dag.test()).values()) == {"success"}


def test_nightly_backtest_pushes_its_figures(retrained, pushgateway: str) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    run = env.dag("nightly_backtest_synthetic").test()
    assert set(_states(run).values()) == {"success"}
    metrics = requests.get(f"{pushgateway}/metrics", timeout=5).text
    assert (
        'mlops_backtest_mae{dataset="synthetic",instance="",job="nightly_backtest",role="champion",version="2"}'
        in metrics
    )
    # the challenger alias names the champion's evaluated fit: not scored again (a push replaces its group)
    assert 'job="nightly_backtest",role="challenger"' not in metrics
    assert "mlops_backtest_error_ratio" in metrics
    assert 'mlops_backtest_last_run_timestamp_seconds{dataset="synthetic"' in metrics


def test_drift_monitor_pushes_drift_figures(retrained, pushgateway: str) -> None:  # type: ignore[no-untyped-def]
    env, _, _ = retrained
    run = env.dag("drift_monitor_synthetic").test(logical_date=datetime(2024, 4, 1, tzinfo=UTC))
    states = _states(run)
    assert states == {
        "check_drift": "success",
        "needs_retraining": "success",
        "trigger_retraining": "skipped",
        "record_trigger": "skipped",
    }
    metrics = requests.get(f"{pushgateway}/metrics", timeout=5).text
    labels = 'dataset="synthetic",entity="site_0",instance="",job="drift_monitor",version="2"'
    assert f"mlops_drift_share{{{labels}}}" in metrics
    assert f'mlops_drift_window_rows{{{labels},window="current"}}' in metrics
    assert 'mlops_drift_feature_score{dataset="synthetic",entity="site_1",feature="temp_lag_1_vs_now"' in metrics
    assert 'mlops_drift_consecutive_checks{dataset="synthetic",instance="",job="drift_monitor"} 0' in metrics


@pytest.fixture(scope="module")
def drift_promoted(retrained) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A regime change arrives in the retrained environment; the drift monitor runs on two days of new
    data, and the retraining it triggers runs. What each step left, for the tests to judge (the
    lasting-drift test below), and the state the tests after it start from: a drift-triggered champion
    with a ``previous``. A fixture rather than a test's side effect, so any test that needs that state
    (the MLflow UI check alone, ``-m browser``) gets it."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    from model_registry.registry import champion_version
    from model_registry.tracking import client

    env, _, _ = retrained
    settings = env.settings()
    dataset = DatasetConfig.from_yaml(env.config)
    shifted_end = SHIFTED_END
    # The change began ten days ago: a run fit on every labelled row has seen it before the window its
    # drift gate judges (the newest three days against the six before them).
    changed = with_regime_change(synthetic_frame(days=60, end=shifted_end), days=10)
    changed.to_csv(env.datasets / "series.csv", index=False)
    run_data_chain(settings, dataset, shifted_end - timedelta(days=1))

    monitor = env.dag("drift_monitor_synthetic")
    first = _states(monitor.test(logical_date=_midnight(shifted_end + timedelta(days=1))))
    run_data_chain(settings, dataset, shifted_end)  # a second day of new data
    check_day = shifted_end + timedelta(days=2)
    second = _states(monitor.test(logical_date=_midnight(check_day)))
    with create_session() as session:
        triggered = session.query(DagRun).filter(DagRun.run_id == f"drift__{check_day}").one_or_none()
        dag_id, conf = (triggered.dag_id, dict(triggered.conf)) if triggered else (None, {})
    checks = client(settings).search_runs(
        [client(settings).get_experiment_by_name(settings.mlflow_experiment).experiment_id],
        "tags.job = 'drift_monitor' and tags.triggered_retraining = 'true'",
    )
    before = champion_version(settings, "synthetic_forecaster")
    run = env.dag("retrain_synthetic_forecaster").test(run_conf={**conf, "n_trials": 0}) if conf else None
    return {
        "env": env,
        "shifted_end": shifted_end,
        "first": first,
        "second": second,
        "triggered_dag_id": dag_id,
        "conf": conf,
        "check_dates": [r.data.tags["check_date"] for r in checks],
        "before": before,
        "run_id": run.run_id if run else None,
        "states": _states(run) if run else {},
    }


def test_lasting_drift_triggers_a_retraining_that_is_judged_after_the_change_and_promoted(drift_promoted) -> None:  # type: ignore[no-untyped-def]
    """A regime change arrives; two drifted days of new data trigger a retraining with a reason and the
    streak's first day; its holdout starts there, so champion and challenger are compared on the data
    after the change, which the challenger forecasts better (it trained on the change's first days);
    the drift gate finds its evidence like the newest data, and it becomes champion with no override."""
    from model_registry.registry import champion_version
    from model_registry.tracking import client

    shifted_end, first, second = drift_promoted["shifted_end"], drift_promoted["first"], drift_promoted["second"]
    assert first["check_drift"] == "success"
    assert first["trigger_retraining"] == "skipped"
    assert second["trigger_retraining"] == "success", second
    assert second["record_trigger"] == "success", second
    conf = drift_promoted["conf"]
    assert drift_promoted["triggered_dag_id"] == "retrain_synthetic_forecaster"
    assert "drift share above 0.50 on 2 consecutive days of new data" in conf["reason"]
    assert conf["training_window_end"] == shifted_end.isoformat()
    assert conf["holdout_start"] == (shifted_end - timedelta(days=1)).isoformat()  # the streak's first day
    assert drift_promoted["check_dates"] == [str(shifted_end + timedelta(days=2))]

    before, states = drift_promoted["before"], drift_promoted["states"]
    assert states["promote"] == "success", states
    assert states["skip_promotion"] == "skipped", states
    settings = drift_promoted["env"].settings()
    challenger = client(settings).get_model_version_by_alias("synthetic_forecaster", "challenger")
    champion = client(settings).get_model_version(
        "synthetic_forecaster", str(champion_version(settings, "synthetic_forecaster"))
    )
    assert champion.tags["evaluated_version"] == str(challenger.version), "its refit serves"
    assert champion.version != before
    assert challenger.tags["dag_run_id"] == drift_promoted["run_id"]
    assert challenger.tags["holdout_window"].startswith(f"{shifted_end - timedelta(days=1)}T00:00:00")
    assert float(challenger.tags["holdout_mae"]) < float(challenger.tags["holdout_champion_mae"])
    assert challenger.tags["holdout_champion_version"] == before
    assert challenger.tags["gate_drift"] == "passed", challenger.tags["gate_drift_reason"]
    assert challenger.tags["gate_decision"] == "promoted"
    assert "force_promote_reason" not in challenger.tags
    assert champion.tags["previous_champion"] == before
    # the champion before it was a refit too: the gate scored that one's evaluated fit
    judged = client(settings).get_model_version("synthetic_forecaster", before).tags["evaluated_version"]
    assert (
        f"the champion v{before} is judged by its evaluated fit v{judged}"
        in challenger.tags["gate_champion_challenger_reason"]
    )


@pytest.mark.browser
def test_the_mlflow_ui_shows_champion_previous_their_gates_and_the_drift_report(
    retrained, drift_promoted, browser
) -> None:  # type: ignore[no-untyped-def]
    """MLflow's own UI (``mlflow server`` on the run's tracking database), as an operator reads it after
    the drift-triggered promotion above: the registered model's versions carry the aliases ``champion``
    and ``previous``, the champion's page shows its gate tags, and its run's drift report renders."""
    from model_registry.tracking import CHAMPION, PREVIOUS, client

    env, _, _ = retrained
    settings = env.settings()
    mlflow = client(settings)
    champion = mlflow.get_model_version_by_alias("synthetic_forecaster", CHAMPION)
    previous = mlflow.get_model_version_by_alias("synthetic_forecaster", PREVIOUS)
    reports = [a.path for a in mlflow.list_artifacts(champion.run_id, "drift") if a.path.endswith(".html")]
    assert reports, "the drift gate logged its report"
    experiment = mlflow.get_run(champion.run_id).info.experiment_id
    port = free_port()
    server = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri"]
    server += [settings.mlflow_tracking_uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    with server_process(server, port, timeout=180, start_new_session=True):
        base = f"http://127.0.0.1:{port}/#"
        try:
            page.goto(f"{base}/models/synthetic_forecaster")
            page.get_by_role("button", name=re.compile("close", re.IGNORECASE)).first.click()  # the chat panel
            for version, alias in ((champion.version, CHAMPION), (previous.version, PREVIOUS)):
                row = page.get_by_role("row").filter(has_text=f"Version {version}")
                row.first.wait_for()
                assert row.first.get_by_text(re.compile(rf"^@\s*{alias}$")).count() == 1, (version, alias)
            screenshot(page, "mlflow_registered_model", full_page=True)

            page.goto(f"{base}/models/synthetic_forecaster/versions/{champion.version}")
            page.get_by_text(re.compile(rf"^@\s*{CHAMPION}$")).first.wait_for()
            for tag in ("gate_champion_challenger", "gate_drift", "gate_decision", "previous_champion"):
                row = page.get_by_role("row").filter(has=page.get_by_text(tag, exact=True))
                assert row.count() == 1, tag
                assert champion.tags[tag] in row.inner_text(), (tag, row.inner_text())
            page.get_by_role("row").filter(has=page.get_by_text("gate_drift", exact=True)).scroll_into_view_if_needed()
            screenshot(page, "mlflow_champion_version")

            page.goto(f"{base}/experiments/{experiment}/runs/{champion.run_id}/artifacts/{reports[0]}")
            page.frame_locator("iframe").first.get_by_text(re.compile("Dataset Drift is")).first.wait_for(
                timeout=60_000
            )
            screenshot(page, "mlflow_drift_report")
        finally:
            context.close()


def test_the_promote_task_refuses_a_champion_that_moved_after_its_gate(retrained, drift_promoted) -> None:  # type: ignore[no-untyped-def]
    """The retraining's promote task, given the gate results that the run above logged, after another
    version became champion meanwhile: it refuses and that champion stays. Then the rollback DAG moves
    the champion back, and a running service follows it."""
    import json
    import time

    import mlflow as mlflow_api
    from fastapi.testclient import TestClient

    from feature_drift.outcomes import DriftResult
    from model_registry.outcomes import RegisteredVersion
    from model_registry.promotion import PromotionConflictError, promote_version
    from model_registry.provenance import BUNDLE_DIGEST_TAG
    from model_registry.registry import champion_version
    from model_registry.tracking import client
    from model_serving.app import create_app
    from model_validation.champion import GATE_ARTIFACT
    from model_validation.outcomes import GateDecision
    from orchestration.plan import RunPlan

    env, _, _ = retrained
    settings = env.settings()
    mlflow = client(settings)
    model = "synthetic_forecaster"
    before = champion_version(settings, model)
    assert before is not None
    # the drift-triggered run's challenger, promoted above: its gates' results as the run logged them
    gated_version = mlflow.get_model_version_by_alias(model, "challenger")

    def logged(path: str) -> dict[str, object]:
        with open(mlflow.download_artifacts(gated_version.run_id, path)) as handle:
            return dict(json.load(handle))

    gate = GateDecision.model_validate(logged(GATE_ARTIFACT))
    drift = DriftResult.model_validate(logged("gates/drift.json"))
    assert gate.champion_version not in (None, before)  # gated against the champion before it
    # meanwhile another run promotes a version (a second version of the champion's bundle)
    source = mlflow.get_model_version(model, before)
    other = str(mlflow_api.register_model(str(source.source), model).version)
    mlflow.set_model_version_tag(model, other, BUNDLE_DIGEST_TAG, source.tags[BUNDLE_DIGEST_TAG])
    promote_version(settings, model, other, "another run", expected_champion=before)

    promote = env.dag("retrain_synthetic_forecaster").get_task("promote").python_callable
    plan = RunPlan(
        dataset_config=str(env.config),
        dataset_name="synthetic",
        logical_date=SHIFTED_END,
        dag_run_id=str(gated_version.tags["dag_run_id"]),
        horizon=6,
    )
    challenger = RegisteredVersion(name=model, version=str(gated_version.version), run_id=gated_version.run_id)
    refit = RegisteredVersion(name=model, version=gated_version.tags["refit_version"], run_id=gated_version.run_id)
    with pytest.raises(
        PromotionConflictError, match=f"gated against champion {gate.champion_version}, but the champion"
    ):
        promote(plan, challenger, refit, gate, drift)
    assert champion_version(settings, model) == other

    def served(service: TestClient) -> str:
        response = service.post("/v1/forecast", json={"entity_id": "site_0"})
        assert response.status_code == 200, response.text
        return str(response.json()["model_version"])

    with TestClient(create_app(settings.model_copy(update={"model_poll_seconds": 0.2}))) as service:
        assert served(service) == other
        run = env.dag("rollback_synthetic_champion").test(run_conf={"reason": "the other run's model is worse"})
        assert set(_states(run).values()) == {"success"}, _states(run)
        assert champion_version(settings, model) == before
        assert mlflow.get_model_version(model, other).tags["rollback_reason"] == "the other run's model is worse"
        deadline = time.monotonic() + 60
        while served(service) != before:
            assert time.monotonic() < deadline, "the service still answers with the rolled-back version"
            time.sleep(0.2)


def test_the_daily_data_dag_lands_a_day_and_names_it_in_its_asset_events(
    retrained, drift_promoted, pushgateway: str
) -> None:  # type: ignore[no-untyped-def]
    """``ingest_<name>`` lands, checks and loads the day of its data interval, and each of its asset
    events names that day (what the consumers read; the scheduler-driven chain is in
    test_airflow_rest). A retraining of that day then reuses the landed, checked day."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    env, _, _ = retrained
    day = SHIFTED_END  # the newest day of the source the tests above left
    # A run at 01:00 covers the day before it (its data interval), as the schedule runs it.
    after = datetime(day.year, day.month, day.day, 1, tzinfo=UTC) + timedelta(days=1)
    run = env.dag("ingest_synthetic").test(logical_date=after)
    assert set(_states(run).values()) == {"success"}, _states(run)
    with create_session() as session:
        events = {
            e.asset.name: e.extra for e in session.query(AssetEvent).filter(AssetEvent.source_run_id == run.run_id)
        }
    assert events == {
        "synthetic_validated": {"data_date": day.isoformat()},
        "synthetic_online_features": {"data_date": day.isoformat()},
    }
    landed = env.home / "landing" / "synthetic" / f"ds={day}" / "data.parquet"
    checked = env.home / "artifacts" / "synthetic" / f"ds={day}" / "validation" / "validation_result.json"
    assert (env.home / "validated" / "synthetic" / f"ds={day}" / "data.parquet").is_file()
    before = landed.stat().st_mtime_ns, checked.stat().st_mtime_ns

    # The batch forecast of the day (by hand: the newest validated day), twice: the day's rows are replaced.
    from forecast_store import store

    for _ in range(2):
        forecast = env.dag("forecast_synthetic").test()
        assert set(_states(forecast).values()) == {"success"}
        issued = store.issued(env.settings(), "synthetic", data_date=day)
        assert len(issued) == 2 * 6, "one forecast per entity and step of the day"
        assert all(tuple(level for level, _, _ in r.intervals) == (0.8, 0.95) for r in issued), issued
        assert all(lower <= r.value <= upper for r in issued for _, lower, upper in r.intervals)
    assert {(r.entity_id, r.dag_run_id) for r in issued} == {("site_0", forecast.run_id), ("site_1", forecast.run_id)}

    # The day before's forecasts (the batch code, as its DAG runs it), scored by the day's data: every
    # step of every entity once, also when the scoring runs again; each figure on the champion's run.
    from model_registry.tracking import client
    from model_serving.batch import issue_day

    settings = env.settings()
    dataset = DatasetConfig.from_yaml(env.config, settings)
    yesterday = issue_day(settings, dataset, day - timedelta(days=1))
    # the champion promoted after the drift above forecasts; the one it replaced, in its shadow
    [shadow_version] = yesterday.shadow_versions
    for _ in range(2):
        scoring = env.dag("score_synthetic").test()
        assert set(_states(scoring).values()) == {"success"}, _states(scoring)
    every = store.scored(settings, "synthetic")
    shadows = [r for r in every if r["source"] == "shadow"]
    scored = [r for r in every if r["source"] == "batch"]
    assert sorted((r["entity_id"], r["step"]) for r in shadows) == [
        (e, h) for e in ("site_0", "site_1") for h in range(1, 7)
    ]
    assert {r["model_version"] for r in shadows} == {shadow_version} != {r["model_version"] for r in scored}
    entities_steps = sorted((r["entity_id"], r["step"]) for r in scored)
    assert entities_steps == [(e, h) for e in ("site_0", "site_1") for h in range(1, 7)]
    assert {r["target_date"] for r in scored} == {day}
    assert all(r["naive_value"] is not None for r in scored)
    mlflow = client(settings)
    run_id = mlflow.get_model_version("synthetic_forecaster", yesterday.model_version).run_id
    history = mlflow.get_metric_history(run_id, "realized_mae")
    mae = sum(abs(r["error"]) for r in scored) / len(scored)
    # One entry, though the scoring ran twice: the same day logs the same metric at the same step and time.
    assert [(round(m.value, 9), m.step) for m in history] == [(round(mae, 9), (day - date(1970, 1, 1)).days)]
    metrics = requests.get(f"{pushgateway}/metrics", timeout=5).text
    pushed = 'mlops_realized_mae{dataset="synthetic",instance="",job="forecast_scoring",source="batch",step="all"}'
    assert pushed in metrics
    # the bands of the same forecasts: the day's coverage per level, and the week's for the alert
    coverage = (
        'mlops_realized_coverage{dataset="synthetic",instance="",job="forecast_scoring",level="80",source="batch"}'
    )
    assert coverage in metrics
    assert 'mlops_realized_coverage_7d{dataset="synthetic",instance="",job="forecast_scoring",level="95"}' in metrics
    shadow_mae = sum(abs(r["error"]) for r in shadows) / len(shadows)
    from prometheus_client.parser import text_string_to_metric_families

    [pushed_shadow] = [
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "mlops_realized_version_mae" and sample.labels.get("source") == "shadow"
    ]
    assert pushed_shadow == pytest.approx(shadow_mae)
    shadow_run = mlflow.get_model_version("synthetic_forecaster", shadow_version).run_id
    assert mlflow.get_metric_history(shadow_run, "realized_mae")[-1].value == pytest.approx(shadow_mae)

    retrain = env.dag("retrain_synthetic_forecaster")
    states = _states(retrain.test(run_conf={"training_window_end": day.isoformat(), "n_trials": 0, "reason": "reuse"}))
    assert states["register_challenger"] == "success", states
    assert (landed.stat().st_mtime_ns, checked.stat().st_mtime_ns) == before, "the day was landed or checked again"


def test_a_corrected_day_run_again_is_replaced_everywhere(retrained, drift_promoted) -> None:  # type: ignore[no-untyped-def]
    """The source of the newest day corrected (its last hour), the day's DAGs run again: its landed and
    validated partitions, its features and its forecasts are replaced, with the same row counts, the
    new values and no duplicate; the scores of the day's targets follow. The newest day is the one
    ``drift_promoted`` landed; alone, the test forecasts it first."""
    import pandas as pd

    from feature_store.features import offline_source_path
    from forecast_store import store

    env, _, _ = retrained
    settings = env.settings()
    dataset = DatasetConfig.from_yaml(env.config, settings)
    day = SHIFTED_END
    after = datetime(day.year, day.month, day.day, 1, tzinfo=UTC) + timedelta(days=1)
    landed_path = env.home / "landing" / "synthetic" / f"ds={day}" / "data.parquet"
    validated_path = env.home / "validated" / "synthetic" / f"ds={day}" / "data.parquet"
    if not store.ready(settings) or not store.issued(settings, "synthetic", data_date=day):
        assert set(_states(env.dag("forecast_synthetic").test()).values()) == {"success"}
    landed, features = pd.read_parquet(landed_path), pd.read_parquet(offline_source_path(settings, dataset))
    issued = {(r.entity_id, r.step): r.value for r in store.issued(settings, "synthetic", data_date=day)}
    scored = len(store.scored(settings, "synthetic"))

    source_path = env.config.parent / "series.csv"
    source = pd.read_csv(source_path, float_precision="round_trip")
    last = (source["ts"] == f"{day} 23:00:00") & (source["site"] == "site_0")
    source.loc[last, "temp"] += 5.0
    source.to_csv(source_path, index=False)
    for dag_id, when in (("ingest_synthetic", after), ("forecast_synthetic", None), ("score_synthetic", None)):
        run = env.dag(dag_id).test(logical_date=when) if when else env.dag(dag_id).test()
        assert set(_states(run).values()) == {"success"}, (dag_id, _states(run))

    stamp = pd.Timestamp(f"{day} 23:00:00", tz="UTC")
    for path in (landed_path, validated_path):
        now = pd.read_parquet(path)
        assert len(now) == len(landed)
        assert not now.duplicated(["site", "ts"]).any()
        diff = now["temp"].to_numpy() - landed["temp"].to_numpy()
        assert list(now.loc[diff != 0, ["site", "ts"]].itertuples(index=False)) == [("site_0", stamp)]
        assert diff[diff != 0] == pytest.approx([5.0])
    rebuilt = pd.read_parquet(offline_source_path(settings, dataset))
    assert len(rebuilt) == len(features)
    assert not rebuilt.duplicated(["site", "event_timestamp"]).any()
    newest = rebuilt[(rebuilt["site"] == "site_0") & (rebuilt["event_timestamp"] == stamp)]
    assert newest["temp_lag_0"].tolist() == pytest.approx([features.loc[newest.index, "temp_lag_0"].item() + 5.0])
    again = {(r.entity_id, r.step): r.value for r in store.issued(settings, "synthetic", data_date=day)}
    assert again.keys() == issued.keys(), "one forecast per entity and step of the day, as before"
    assert all(again[("site_0", h)] != issued[("site_0", h)] for h in range(1, 7)), "site_0 forecast anew"
    assert len(store.scored(settings, "synthetic")) == scored, "each scored forecast still scored once"


def test_corrupted_input_fails_at_validation_with_nothing_registered(tmp_path: Path, airflow_db: Path) -> None:
    bad = synthetic_frame()
    bad = bad.drop(index=range(200, 210)).reset_index(drop=True)  # a 10-hour gap
    with PlatformEnv(tmp_path) as env:
        write_dataset(env.datasets, frame=bad)
        run = env.dag("retrain_synthetic_forecaster").test(run_conf=CONF)
        states = _states(run)
        assert str(run.state) == "failed"
        assert states["validate"] == "failed"
        assert states["build_features"] == "upstream_failed"
        assert states["train_final"] == "upstream_failed"
        assert states["promote"] == "upstream_failed"
        assert not (env.home / "validated" / "synthetic" / f"ds={date(2024, 3, 31)}").exists()
        assert not list(env.home.glob("feature_repo/data/*.parquet"))
        from model_registry.tracking import client

        assert client(env.settings()).search_registered_models() == []


def test_a_selection_run_evaluates_each_candidate_in_a_task_of_its_own(retrained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``model_family: selection``: one mapped task per candidate of the dataset's selection, each
    handing its evaluation over as a file of the run; the final training chooses among them and logs
    each candidate as a child run of its own run, with the leaderboard and the per-series choice."""
    import json

    from model_registry.tracking import CHALLENGER, client

    env, _, _ = retrained
    run = env.dag("retrain_synthetic_forecaster").test(run_conf={**CONF, "model_family": "selection", "n_trials": 0})
    mapped = {ti.map_index: str(ti.state) for ti in run.get_task_instances() if ti.task_id == "evaluate_candidate"}
    assert mapped == {0: "success", 1: "success", 2: "success"}
    states = _states(run)
    assert (states["train_final"], states["register_challenger"]) == ("success", "success"), states
    candidates = sorted(env.home.glob(f"**/runs/{run_key(run.run_id)}/candidates/*.zip"))
    assert [p.name for p in candidates] == ["auto_theta.zip", "naive.zip", "seasonal_naive.zip"]

    mlflow = client(env.settings())
    challenger = mlflow.get_model_version_by_alias("synthetic_forecaster", CHALLENGER)
    assert challenger.tags["dag_run_id"] == run.run_id
    parent = mlflow.get_run(challenger.run_id)
    assert parent.data.tags["family"] == "selection"
    children = mlflow.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'", max_results=10
    )
    assert sorted(child.data.tags["family"] for child in children) == ["auto_theta", "naive", "seasonal_naive"]
    for child in children:
        assert "dag_run_id" not in child.data.tags, "a DAG run's id finds its parent run alone"
        assert {"backtest_mase", "backtest_mae", "series_best", "fit_seconds"} <= set(child.data.metrics)
        assert len(mlflow.get_metric_history(child.info.run_id, "backtest_mae_by_step")) == 6  # the horizon
    assert sum(child.data.metrics["series_best"] for child in children) == 2, "each site is best with one"
    artifacts = {a.path for a in mlflow.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "leaderboard.png", "choice.json"} <= artifacts
    choice = json.loads(Path(mlflow.download_artifacts(parent.info.run_id, "choice.json", str(tmp_path))).read_text())
    assert sorted(choice["series"]) == ["site_0", "site_1"], choice
    assert choice["default"], choice
