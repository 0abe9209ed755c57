"""Promotion gates, alias moves and the drift loop on real MLflow, Feast, Evidently, Redis and Prometheus.

One registry for the module: v1 is trained and promoted by the baseline rule, v2 is a deliberately
weak model; later tests add versions and a week of shifted data, so their order matters.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from model_registry import tracking
from tests.utils.data import SYNTHETIC_END, synthetic_frame, with_regime_change, write_dataset
from tests.utils.platform import run_data_chain

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.scenario]

MODEL = "synthetic_forecaster"
SHIFTED_END = SYNTHETIC_END + timedelta(days=10)


@dataclass
class Registry:
    settings: Settings
    dataset: DatasetConfig
    config: Path
    champion: str  # v1, promoted by the baseline rule
    weak: str  # v2, registered, never passes the gate


def _train(settings: Settings, dataset: DatasetConfig, params: dict[str, object] | None = None) -> str:
    from model_registry.registry import register_challenger
    from model_training.train import train

    outcome = train(settings, dataset, SYNTHETIC_END, params=params, tags={"test": "promotion"})
    lineage = {"ge_result": "passed: test"}
    return register_challenger(settings, MODEL, outcome.run_id, lineage).version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    from model_registry.promotion import promote_version
    from model_validation.champion import evaluate_challenger, holdout_of

    root = tmp_path_factory.mktemp("promotion")
    config = write_dataset(root / "dataset", drift_reports=1)
    settings = Settings(home=root / "home", dataset_config=config, _env_file=None)  # type: ignore[call-arg]
    tracking.configure(settings)
    dataset = DatasetConfig.from_yaml(config)
    run_data_chain(settings, dataset, SYNTHETIC_END)
    champion = _train(settings, dataset)
    decision = evaluate_challenger(settings, dataset, MODEL, champion, holdout_of(settings, dataset, SYNTHETIC_END))
    assert decision.passed, decision.reason
    assert decision.champion_version is None
    promote_version(settings, MODEL, champion, decision.reason, expected_champion=None)
    weak = _train(settings, dataset, {"n_estimators": 1, "max_depth": 1, "learning_rate": 0.05})
    return Registry(settings, dataset, config, champion, weak)


@pytest.fixture
def service(registry: Registry) -> Iterator[TestClient]:
    """The serving app over the module's registry, following the champion alias every 0.2 s."""
    from model_serving.app import create_app

    with TestClient(create_app(registry.settings.model_copy(update={"model_poll_seconds": 0.2}))) as client:
        yield client


@pytest.fixture
def cli(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry CLI's environment: this module's home, nothing else from the caller's MLOPS_*."""
    import os

    from core.settings import get_settings

    for key in [k for k in os.environ if k.startswith("MLOPS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("MLOPS_HOME", str(registry.settings.home))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _served_version(client: TestClient) -> str:
    response = client.post("/v1/forecast", json={"entity_id": "site_0"})
    assert response.status_code == 200, response.text
    return str(response.json()["model_version"])


def _wait_for_version(client: TestClient, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _served_version(client) != version:
        assert time.monotonic() < deadline, f"the service still answers with another version than v{version}"
        time.sleep(0.2)


def test_the_first_champion_passes_on_the_baseline_rule_and_carries_its_lineage(registry: Registry) -> None:
    from model_registry.tracking import CHAMPION, client

    mlflow = client(registry.settings)
    version = mlflow.get_model_version_by_alias(MODEL, CHAMPION)
    assert str(version.version) == registry.champion
    tags = version.tags
    assert tags["gate_champion_challenger"] == "passed"
    assert "no champion yet: the baseline rule decides" in tags["gate_champion_challenger_reason"]
    assert float(tags["holdout_mae"]) < float(tags["holdout_baseline_mae"])
    assert tags["holdout_champion_version"] == ""
    _start, end = tags["data_window"].split("/")
    holdout_start = datetime.fromisoformat(tags["holdout_window"].split("/")[0])
    assert datetime.fromisoformat(end) + 6 * timedelta(hours=1) == holdout_start  # one horizon before: unseen
    assert len(tags["dataset_fingerprint"]) == 16
    assert tags["code_version"] != "unknown"
    assert tags["ge_result"] == "passed: test"
    assert tags["previous_champion"] == ""
    run = mlflow.get_run(version.run_id)
    assert {"holdout_mae", "holdout_baseline_mae", "holdout_mae_site_0", "gate_min_improvement"} <= set(
        run.data.metrics
    )
    assert {"backtest_mae_site_0", "baseline_mae_site_0"} <= set(run.data.metrics)  # few series: a metric each
    artifacts = {a.path for a in mlflow.list_artifacts(version.run_id, "gates")}
    assert artifacts == {"gates/champion_challenger.json"}
    # Every series' backtest MAE in the run's table, as many series as there are.
    (registry.settings.home / "tables").mkdir(exist_ok=True)
    table = mlflow.download_artifacts(version.run_id, "mae_by_series.json", str(registry.settings.home / "tables"))
    rows = json.loads(Path(table).read_text())
    assert [row[0] for row in rows["data"]] == ["site_0", "site_1"]
    assert rows["columns"] == ["series", "mae", "baseline_mae"]
    assert all(row[1] > 0 and row[2] > 0 for row in rows["data"])


def test_a_worse_challenger_is_not_promoted_and_the_champion_keeps_serving(
    registry: Registry, service: TestClient, cli: None
) -> None:
    from model_registry.registry import champion_version
    from model_registry.tracking import client
    from model_validation.champion import evaluate_challenger, holdout_of

    holdout = holdout_of(registry.settings, registry.dataset, SYNTHETIC_END)
    decision = evaluate_challenger(registry.settings, registry.dataset, MODEL, registry.weak, holdout)
    assert not decision.passed
    assert decision.champion_version == registry.champion
    assert decision.champion_mae is not None
    assert decision.challenger_mae > decision.champion_mae
    assert decision.champion_mase is not None
    assert decision.challenger_mase > decision.champion_mase
    assert f"> champion {decision.champion_mase:.4f}" in decision.reason, "the decision is on MASE"
    tags = client(registry.settings).get_model_version(MODEL, registry.weak).tags
    assert tags["gate_champion_challenger"] == "failed"
    assert tags["holdout_champion_version"] == registry.champion
    assert float(tags["holdout_champion_mae"]) == pytest.approx(decision.champion_mae, rel=1e-5)
    # the CLI takes the same decision and moves nothing
    from model_validation.__main__ import main

    args = ["promote", "--dataset", str(registry.config), "--logical-date", SYNTHETIC_END.isoformat()]
    assert main([*args, "--version", registry.weak]) == 3
    assert champion_version(registry.settings, MODEL) == registry.champion
    assert _served_version(service) == registry.champion


def test_the_gate_scores_the_challengers_bands_and_can_demand_their_coverage(registry: Registry) -> None:
    """Coverage on the holdout is reported on every decision; with ``promotion.coverage_tolerance``
    set tighter than any holdout can meet, it alone fails the gate."""
    from model_registry.tracking import client
    from model_validation.champion import evaluate_challenger, holdout_of

    holdout = holdout_of(registry.settings, registry.dataset, SYNTHETIC_END)
    decision = evaluate_challenger(registry.settings, registry.dataset, MODEL, registry.champion, holdout)
    assert decision.passed, decision.reason  # against itself: no champion, the baselines decide
    assert set(decision.coverage) == {"80", "95"}
    assert 0 < decision.coverage["80"] <= decision.coverage["95"] <= 1
    assert f"80% bands cover {decision.coverage['80']:.1%}" in decision.reason
    run = client(registry.settings).get_run(
        str(client(registry.settings).get_model_version(MODEL, registry.champion).run_id)
    )
    assert run.data.metrics["holdout_coverage_95"] == pytest.approx(decision.coverage["95"])

    strict = registry.dataset.model_copy(
        update={"promotion": registry.dataset.promotion.model_copy(update={"coverage_tolerance": 1e-9})}
    )
    refused = evaluate_challenger(registry.settings, strict, MODEL, registry.champion, holdout)
    assert not refused.passed
    assert "outside 0.0% of nominal" in refused.reason
    assert refused.coverage == decision.coverage
    # Put the champion's recorded decision back as the module's other tests expect it.
    assert evaluate_challenger(registry.settings, registry.dataset, MODEL, registry.champion, holdout).passed


def test_a_rollback_restores_the_previous_champion_and_the_running_service_follows(
    registry: Registry, service: TestClient, cli: None
) -> None:
    from model_registry.__main__ import main
    from model_registry.promotion import promote_version, rollback
    from model_registry.tracking import PREVIOUS, client

    assert _served_version(service) == registry.champion
    # a bad version reaches production (say, forced by hand) ...
    promote_version(registry.settings, MODEL, registry.weak, "forced by hand")
    _wait_for_version(service, registry.weak)
    mlflow = client(registry.settings)
    assert str(mlflow.get_model_version_by_alias(MODEL, PREVIOUS).version) == registry.champion
    # ... and one command takes it back
    assert main(["rollback", "--dataset", str(registry.config), "--reason", "worse forecasts in production"]) == 0
    _wait_for_version(service, registry.champion)
    weak = mlflow.get_model_version(MODEL, registry.weak)
    assert weak.tags["rollback_reason"] == "worse forecasts in production"
    assert "rolled_back_at" in weak.tags
    assert PREVIOUS not in {a for a in mlflow.get_registered_model(MODEL).aliases}  # v1 had no predecessor
    from model_registry.promotion import RollbackError

    with pytest.raises(RollbackError, match="no previous champion"):
        rollback(registry.settings, MODEL, "again")


RACE = """
import sys
from core.settings import Settings
from model_registry.promotion import PromotionConflictError, promote_version
home, lock, port, version, expected = sys.argv[1:6]
settings = Settings(home=home, promotion_lock=lock, redis_port=int(port), redis_password="test-secret",
                    _env_file=None)
try:
    promote_version(settings, "synthetic_forecaster", version, "race", expected_champion=expected)
    print("won")
except PromotionConflictError:
    print("refused")
"""


@pytest.mark.parametrize("lock", ["file", "redis"])
def test_concurrent_promotions_leave_exactly_one_champion(registry: Registry, redis_server: int, lock: str) -> None:
    """Four runs that passed their gates against the same champion promote at once: one wins."""
    import mlflow

    from model_registry.registry import champion_version
    from model_registry.tracking import CHAMPION, PREVIOUS, client

    mlflow_client = client(registry.settings)
    source = mlflow_client.get_model_version(MODEL, registry.champion)
    contenders = [str(mlflow.register_model(f"runs:/{source.run_id}/model", MODEL).version) for _ in range(4)]
    before = champion_version(registry.settings, MODEL)
    assert before is not None
    home = str(registry.settings.home)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, home, lock, str(redis_server), version, before],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for version in contenders
    ]
    outcomes = [p.communicate(timeout=300)[0].strip() for p in processes]
    assert all(p.returncode == 0 for p in processes), outcomes
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]
    winner = contenders[outcomes.index("won")]
    registered = mlflow_client.get_registered_model(MODEL).aliases
    aliases = {alias: str(version) for alias, version in registered.items() if alias in (CHAMPION, PREVIOUS)}
    assert aliases == {CHAMPION: winner, PREVIOUS: before}
    assert mlflow_client.get_model_version(MODEL, winner).tags["previous_champion"] == before
    # back to v1 for the tests below
    from model_registry.promotion import rollback

    rollback(registry.settings, MODEL, "end of race", registry.champion)


def test_the_drift_gate_blocks_a_version_whose_evidence_predates_a_regime_change(registry: Registry) -> None:
    """The gate judges what the service now sees against the newest rows a version was fit on before
    it: a clean window passes; after a regime change, a version fit before it is blocked (or forced,
    with its reason), while a run fit on the change before the window judged passes (a change younger
    than the window: ``test_the_window_judged_is_never_part_of_its_reference``)."""
    from feature_drift.outcomes import DriftOutcome, DriftResult
    from feature_store.training_set import write_training_set
    from model_registry.tracking import client
    from model_validation.drift import gate_version

    settings, dataset = registry.settings, registry.dataset

    def gate(day: date, force: bool = False, fresh_run: bool = False) -> DriftResult:
        run_dir = settings.artifacts / f"gate-{day}-{force}-{fresh_run}"
        rows = str(run_dir / "training_set.parquet")
        path = write_training_set(settings, dataset, day, rows).location if fresh_run else None
        return gate_version(
            settings, dataset, registry.weak, day, path, run_dir / "drift", force, forced_because="known outage"
        )

    clean = gate(SYNTHETIC_END)
    assert clean.outcome is DriftOutcome.PASSED, clean.reason

    shifted = with_regime_change(synthetic_frame(days=60, end=SHIFTED_END), days=10)
    shifted.to_csv(registry.config.parent / "series.csv", index=False)
    run_data_chain(settings, dataset, SHIFTED_END)
    blocked = gate(SHIFTED_END)  # v2 was fit and judged before the change
    assert blocked.outcome is DriftOutcome.BLOCKED
    assert (blocked.entities["site_0"].drift_share or 0.0) > dataset.promotion.max_drift_share
    assert blocked.current_end.startswith(SHIFTED_END.isoformat())
    tags = client(settings).get_model_version(MODEL, registry.weak).tags
    assert tags["gate_drift"] == "blocked"
    assert "drift share above 0.50" in tags["gate_drift_reason"]
    # judged as of an older day, it is still compared with the newest data the service forecasts from
    assert gate(SYNTHETIC_END).outcome is DriftOutcome.BLOCKED
    forced = gate(SHIFTED_END, force=True)
    assert forced.outcome is DriftOutcome.FORCED
    tags = client(settings).get_model_version(MODEL, registry.weak).tags
    assert tags["gate_drift"] == "forced"
    assert tags["force_promote_reason"] == "known outage"
    assert "promotion forced: known outage" in tags["gate_drift_reason"]
    run_id = client(settings).get_model_version(MODEL, registry.weak).run_id
    figures = client(settings).get_run(run_id).data.metrics
    assert figures["drift_entities_judged"] == 2
    assert figures["drift_entities_drifted"] == len(forced.drifted_entities) >= 1
    assert figures["drift_share_site_0"] == forced.entities["site_0"].drift_share
    reports = {a.path for a in client(settings).list_artifacts(run_id, "drift")}
    worst = max(forced.entities, key=lambda name: forced.entities[name].drift_share or 0.0)
    # the dataset asks for one report a gate: its largest share's (the run keeps each gate's)
    assert [Path(path).name for path in forced.report_paths] == [f"drift_{worst}.html"]
    assert f"drift/drift_{worst}.html" in reports
    fresh = gate(SHIFTED_END, fresh_run=True)  # a run fit on every labelled row up to the newest day
    assert fresh.outcome is DriftOutcome.PASSED, fresh.reason
    assert fresh.reference_end < fresh.current_start


def test_drift_figures_reach_prometheus_through_the_pushgateway(
    registry: Registry, pushgateway: str, prometheus: str
) -> None:
    from monitoring.champion_drift import check_champion
    from monitoring.outcomes import CheckState

    settings = registry.settings.model_copy(update={"pushgateway_url": pushgateway})
    day_before = SHIFTED_END - timedelta(days=1)
    first = check_champion(settings, registry.dataset, SHIFTED_END, data_date=day_before)
    assert first.state is CheckState.DRIFTED
    assert first.consecutive_drifted == 1
    assert not first.trigger
    again = check_champion(settings, registry.dataset, SHIFTED_END, data_date=day_before)  # a retried check
    assert again.consecutive_drifted == 1
    assert again.check_run_id == first.check_run_id
    # the next day's check finds no new day of data: recorded, not counted
    stale = check_champion(settings, registry.dataset, SHIFTED_END + timedelta(days=1), data_date=day_before)
    assert stale.state is CheckState.NO_NEW_DATA
    assert (stale.consecutive_drifted, stale.trigger, stale.drift) == (1, False, None)
    assert stale.check_run_id != first.check_run_id
    # by default a check judges the newest validated day, here a new one
    before_second = time.time()
    second = check_champion(settings, registry.dataset, SHIFTED_END + timedelta(days=2))
    assert second.data_date == SHIFTED_END.isoformat()
    assert second.consecutive_drifted == 2
    assert second.trigger
    assert f"2 consecutive days of new data up to {SHIFTED_END}" in second.trigger_reason

    def query(expression: str) -> list[dict[str, object]]:
        deadline = time.monotonic() + 60
        while True:
            body = requests.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5).json()
            if body["data"]["result"] or time.monotonic() > deadline:
                return list(body["data"]["result"])
            time.sleep(0.5)

    share = query('mlops_drift_share{dataset="synthetic",entity="site_0"}')
    assert share
    assert float(share[0]["value"][1]) > 0.5
    assert share[0]["metric"]["job"] == "drift_monitor"  # type: ignore[index]
    scores = query('mlops_drift_feature_score{dataset="synthetic",entity="site_0"}')
    assert {s["metric"]["feature"] for s in scores} >= {"load_lag_0", "temp_lag_1_vs_now"}  # type: ignore[index]
    assert float(query('mlops_drifted_features{entity="site_0"}')[0]["value"][1]) > 1  # type: ignore[index]
    rows = query('mlops_drift_window_rows{dataset="synthetic",window="current"}')
    assert {r["metric"]["entity"] for r in rows} == {"site_0", "site_1"}  # type: ignore[index]
    counts = {r["metric"]["state"]: float(r["value"][1]) for r in query('mlops_drift_entities{dataset="synthetic"}')}  # type: ignore[index]
    assert counts["judged"] == 2
    assert counts["not_enough_data"] == 0
    assert 1 <= counts["drifted"] <= 2
    assert float(query("mlops_drift_max_drifted_entities")[0]["value"][1]) == 0.1  # type: ignore[index]
    # the newest push (after the second check) reaches Prometheus with its next scrape
    assert query('mlops_drift_consecutive_checks{dataset="synthetic"} == 2')
    checked = float(query("mlops_drift_last_check_timestamp_seconds")[0]["value"][1])  # type: ignore[index]
    assert before_second <= checked <= time.time(), "the time of the second check, not of its data"


def test_the_cli_promotes_through_both_gates_or_a_recorded_override(registry: Registry, cli: None) -> None:
    """A second version of the champion's bundle ties it on a holdout before the regime change (the
    champion/challenger gate passes): the CLI runs the drift gate too, which compares that evidence
    with the newest, changed data, and refuses; ``--force`` needs a reason, and then promotes and
    records the override."""
    import mlflow

    from model_registry.promotion import rollback
    from model_registry.provenance import BUNDLE_DIGEST_TAG
    from model_registry.registry import champion_version
    from model_registry.tracking import client
    from model_validation.__main__ import main

    mlflow_client = client(registry.settings)
    source = mlflow_client.get_model_version(MODEL, registry.champion)
    copy = str(mlflow.register_model(f"runs:/{source.run_id}/model", MODEL).version)
    mlflow_client.set_model_version_tag(MODEL, copy, BUNDLE_DIGEST_TAG, source.tags[BUNDLE_DIGEST_TAG])
    # judged on the holdout before the change: the champion/challenger gate passes (a tie), the drift
    # gate compares that evidence with the newest, changed data
    args = ["promote", "--dataset", str(registry.config), "--logical-date", SYNTHETIC_END.isoformat()]
    args += ["--version", copy]

    assert main(args) == 3
    assert champion_version(registry.settings, MODEL) == registry.champion
    tags = mlflow_client.get_model_version(MODEL, copy).tags
    assert tags["gate_champion_challenger"] == "passed"
    assert tags["gate_drift"] == "blocked"
    assert (tags["gate_decision"], tags["gate_decision_reason"][:36]) == (
        "rejected",
        "not promoted: drift gate blocked: dr",
    )
    with pytest.raises(SystemExit):  # an override says why
        main([*args, "--force"])

    assert main([*args, "--force", "--reason", "sensor swap, known"]) == 0
    assert champion_version(registry.settings, MODEL) == copy
    tags = mlflow_client.get_model_version(MODEL, copy).tags
    assert (tags["gate_drift"], tags["force_promote_reason"], tags["gate_decision"]) == (
        "forced",
        "sensor swap, known",
        "promoted",
    )
    assert "promotion forced: sensor swap, known" in tags["promotion_reason"]
    rollback(registry.settings, MODEL, "end of the CLI test", registry.champion)
