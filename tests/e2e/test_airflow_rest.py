"""Real Airflow: ``airflow standalone`` serves its UI and REST API v2. The retraining DAG is triggered
from the UI's form in a real browser and runs to success; REST refuses a conf the form's schema
refuses; a day of data starts the DAGs that consume it."""

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from core.settings import PROJECT_ROOT
from simulation.stack import Postgres
from tests.utils.browser import screenshot
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import PlatformEnv, promote_first_version
from tests.utils.servers import answered, free_port

# How long a run may take before a test calls it stuck: a hang guard, no speed target (a training run
# takes minutes beside the other test workers on two cores, and more on a slower machine).
RUN_SECONDS = 1200
# How long the trigger form may take to close once triggered (its request creates the run through the
# API server, which a busy machine answers slowly): a guard against a form that never closes.
FORM_SECONDS = 180
# How long the UI check waits for an element to show (a hang guard, as the others).
UI_SECONDS = 120
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.heavy,
    pytest.mark.scenario,
    pytest.mark.timeout(3 * RUN_SECONDS),
]

DAG_ID = "retrain_synthetic_forecaster"
ADMIN_PASSWORD = "airflow-admin-password"
REDIS_PASSWORD, ADMIN_TOKEN = "redis-password-in-env", "serving-admin-token-in-env"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
LEAKY_DAG = """
from datetime import datetime

from airflow.sdk import dag, task

from core.settings import get_settings
from orchestration.dags import default_args


@dag(dag_id="leaky", schedule=None, start_date=datetime(2024, 1, 1),
     default_args=default_args(get_settings(), retries=0))
def leaky():
    @task
    def print_credentials() -> None:
        import logging

        from core.settings import get_settings

        settings = get_settings()
        logging.getLogger("leaky").warning("admin token %s", settings.admin_token.get_secret_value())
        print("redis password:", settings.redis_password.get_secret_value())

    print_credentials()


leaky()
"""


def _unpause(dag_url: str, auth: dict[str, str]) -> None:
    answer = requests.patch(dag_url, json={"is_paused": False}, headers=auth, timeout=10)
    assert answer.ok, answer.text


def _post(url: str, body: dict[str, Any], auth: dict[str, str]) -> Any:
    """POST and return the answer's JSON; any refusal fails at once."""
    answer = requests.post(url, json=body, headers=auth, timeout=10)
    assert answer.ok, answer.text
    return answer.json()


def _task_states(dag_url: str, run_id: str, auth: dict[str, str]) -> dict[str, str | None]:
    tasks = requests.get(f"{dag_url}/dagRuns/{run_id}/taskInstances", headers=auth, timeout=10).json()
    return {t["task_id"]: t["state"] for t in tasks["task_instances"]}


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], PlatformEnv]]:
    root = tmp_path_factory.mktemp("standalone")
    platform = PlatformEnv(root, MLOPS_REDIS_PASSWORD=REDIS_PASSWORD, MLOPS_ADMIN_TOKEN=ADMIN_TOKEN)
    home = root / "airflow"
    leaky = root / "leaky_dags"
    leaky.mkdir()
    (leaky / "leaky.py").write_text(LEAKY_DAG)
    port = free_port()
    # Airflow's metadata on PostgreSQL, as in the compose stack: on SQLite the API refuses a backfill
    # while the scheduler holds the database, and a scheduler once died (ObjectDeletedError on a DagRun)
    # right after a backfill's creation there; standalone does not restart it.
    metadata = Postgres(("airflow",))
    metadata.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLOPS_"))}
    env.update(platform.values)
    env.update(
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata.url("airflow"),
        # Airflow would derive an asyncpg URL, a driver this venv lacks (compose's image has it).
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata.url("airflow"),
        # Standalone's LocalExecutor runs up to 32 task processes at once on a non-SQLite database;
        # four keep a day's DAGs moving without crowding out the rest of the suite.
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(PROJECT_ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__HOST="127.0.0.1",
        # Task runners report to the execution API of this server, not to the default port.
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        # The platform's DAGs, and a DAG whose task prints credentials (the masking check).
        AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST=json.dumps(
            [
                {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
                {"name": "leaky", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(leaky)}},
            ]
        ),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    # The login as the compose stack sets it up: airflow-init writes the password from .env.
    passwords = root / "auth" / "passwords.json"
    subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "infra" / "compose" / "airflow_passwords.py"), str(passwords)],
        env={**env, "AIRFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD},
        check=True,
    )
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
    log = (root / "standalone.log").open("w")
    process = subprocess.Popen(
        ["airflow", "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        answered(lambda: requests.get(f"{base}/api/v2/monitor/health", timeout=5).ok, 240, "Airflow API up")
        wrong = requests.post(f"{base}/auth/token", json={"username": "admin", "password": "admin"}, timeout=10)
        assert wrong.status_code == 401
        token = requests.post(
            f"{base}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10
        ).json()["access_token"]
        assert json.loads(passwords.read_text()) == {"admin": ADMIN_PASSWORD}  # kept, not regenerated
        yield base, {"Authorization": f"Bearer {token}"}, platform
    finally:
        # Standalone's components are its children, in its process group: SIGTERM to all, then
        # SIGKILL to whatever is left (a DAG processor once outlived standalone and the whole run).
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        log.close()
        metadata.stop()


@pytest.fixture(scope="module")
def champion(airflow_api) -> str:  # type: ignore[no-untyped-def]
    """The champion the day's consumers (batch forecast, nightly backtest) work with: the one the UI
    form's retraining promoted where that test ran first, else one trained in process the way that
    retraining would have, so that each consumer test also passes alone."""
    _, _, platform = airflow_api
    with platform:
        from core.dataset import DatasetConfig
        from model_registry.registry import champion_version

        settings = platform.settings()
        dataset = DatasetConfig.from_yaml(platform.config, settings)
        return champion_version(settings, settings.model_name(dataset.name)) or promote_first_version(settings, dataset)


def _log_in(page: Any, base: str, path: str) -> None:
    """Open ``path``; Airflow sends a new visitor to its login page first, then back."""
    page.goto(f"{base}{path}")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}**")


def _trigger_form(page: Any) -> Any:
    """Open the DAG's trigger form; returns the dialog."""
    page.get_by_role("button", name="Trigger").first.click()
    form = page.locator("[role=dialog][aria-modal=true]")
    form.get_by_text("Run Parameters").wait_for()
    return form


def test_bad_conf_over_rest_is_refused_before_a_run_exists(airflow_api) -> None:  # type: ignore[no-untyped-def]
    base, auth, _ = airflow_api
    dag_url = f"{base}/api/v2/dags/{DAG_ID}"
    answered(lambda: requests.get(dag_url, headers=auth, timeout=5).ok, 180, "DAG parsed")
    assert requests.get(dag_url, timeout=5).status_code == 401  # no token, no access

    def runs() -> int:
        return int(requests.get(f"{dag_url}/dagRuns", headers=auth, timeout=10).json()["total_entries"])

    before = runs()
    bad = requests.post(
        f"{dag_url}/dagRuns", json={"logical_date": None, "conf": {"n_trials": -3}}, headers=auth, timeout=10
    )
    assert bad.status_code == 400, bad.text  # the Param schema refuses it before anything runs
    assert runs() == before


@pytest.mark.browser
def test_retraining_triggered_from_the_ui_form_succeeds(airflow_api, browser) -> None:  # type: ignore[no-untyped-def]
    """The way an ML engineer retrains: log in, open the DAG, open its trigger form. Every field shows
    with its title and says what it does; the model family offers exactly the trainable families;
    negative trials are refused. Filled (family, trials, reason) and triggered, with the training
    window end left at the form's default, the run reaches success in the grid view."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    from model_training.forecasters import TRAINABLE

    base, auth, platform = airflow_api
    dag_url = f"{base}/api/v2/dags/{DAG_ID}"
    answered(lambda: requests.get(dag_url, headers=auth, timeout=5).ok, 180, "DAG parsed")
    params = requests.get(f"{dag_url}/details", headers=auth, timeout=10).json()["params"]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # Each wait for an element, longer than Playwright's 30 s: a busy machine's Chromium took longer to
    # load and compile the form's JSON editor (a lazily loaded bundle of several MB).
    context.set_default_timeout(UI_SECONDS * 1000)
    page = context.new_page()
    try:
        _log_in(page, base, f"/dags/{DAG_ID}")
        form = _trigger_form(page)
        for name, param in params.items():
            field = form.locator("[role=group]", has=page.locator("label", has_text=param["schema"]["title"]))
            assert field.count() == 1, f"{name}: no field titled {param['schema']['title']!r}"
            assert param["description"], f"{name}: no description"
            assert param["description"] in field.inner_text(), name
        assert form.locator("[name=element_training_window_end]").input_value() == SYNTHETIC_END.isoformat()
        screenshot(page, "airflow_trigger_form", locator=form)

        # Negative trials: the field takes its minimum back, and a conf typed past the fields is refused.
        trials = form.locator("[name=element_n_trials]")
        trials.fill("-3")
        trials.press("Tab")  # leave the field as a person does; the form clamps on leaving
        expect(trials).to_have_value("0", timeout=UI_SECONDS * 1000)  # polls until the form has clamped
        form.get_by_text("Advanced Options").click()
        form.locator(".monaco-editor .view-lines").click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(json.dumps({"n_trials": -3}))
        form.get_by_role("button", name="Trigger").click()
        refusal = form.get_by_text("Invalid input for param n_trials")
        refusal.wait_for()
        assert "less than the minimum of 0" in form.inner_text()
        screenshot(page, "airflow_trigger_form_refused", locator=form)
        assert requests.get(f"{dag_url}/dagRuns", headers=auth, timeout=10).json()["total_entries"] == 0
        page.reload()

        # Another family than the in-process DAG test's, picked from the form like a user would.
        form = _trigger_form(page)
        form.get_by_role("combobox").click()
        assert sorted(page.get_by_role("option").all_inner_texts()) == TRAINABLE
        page.get_by_role("option", name="nlinear", exact=True).click()
        form.locator("[name=element_n_trials]").fill("1")
        form.locator("[name=element_reason]").fill("UI trigger")
        form.get_by_role("button", name="Trigger").click()
        try:
            form.wait_for(state="hidden", timeout=FORM_SECONDS * 1000)
        except PlaywrightTimeout as stuck:  # an error the form shows says why
            raise AssertionError(f"the form stayed open {FORM_SECONDS} s: {form.inner_text()[-2000:]}") from stuck

        runs = answered(
            lambda: requests.get(f"{dag_url}/dagRuns", headers=auth, timeout=10).json()["dag_runs"], 60, "run created"
        )
        assert len(runs) == 1
        run_id = runs[0]["dag_run_id"]
        assert runs[0]["conf"]["model_family"] == "nlinear"
        assert runs[0]["conf"]["training_window_end"] == SYNTHETIC_END.isoformat()
        assert runs[0]["conf"]["reason"] == "UI trigger"

        # The grid view, reloaded as a person would, until the run's state badge shows an end state.
        badge = page.locator(f'a[href="/dags/{DAG_ID}/runs/{run_id}"] [data-testid=state-badge]').first

        def finished() -> str | None:
            try:
                page.goto(f"{base}/dags/{DAG_ID}")
                badge.wait_for()
            except PlaywrightTimeout:  # a busy API server renders the grid slowly: look again
                return None
            state = badge.get_attribute("aria-label")
            return state if state in ("success", "failed") else None

        try:
            state = answered(finished, RUN_SECONDS, "run finished in the grid view")
        except TimeoutError as stuck:
            raise TimeoutError(f"{stuck}; its tasks: {_task_states(dag_url, run_id, auth)}") from stuck
        states = _task_states(dag_url, run_id, auth)
        assert state == "success", states
        for task_id in states:
            assert page.get_by_test_id(f"grid-{run_id}-{task_id}").count() == 1, f"{task_id} not in the grid"
        screenshot(page, "airflow_run_succeeded")
    finally:
        context.close()
    assert states["promote"] == "success"
    assert states["skip_promotion"] == "skipped"

    with platform:
        from model_registry.registry import champion_version
        from model_registry.tracking import client

        settings = platform.settings()
        version = champion_version(settings, "synthetic_forecaster")
        assert version is not None
        champion = client(settings).get_model_version("synthetic_forecaster", version)
        assert champion.tags["dag_run_id"] == run_id
        assert client(settings).get_run(champion.run_id).data.params["family"] == "nlinear"


def test_a_backfill_fills_days_in_order_and_the_consumers_follow(airflow_api, champion) -> None:  # type: ignore[no-untyped-def]
    """``POST /api/v2/backfills`` (what ``airflow backfill create`` and the UI's backfill send) over
    three days before the newest: the daily data DAG runs them one after the other, oldest first.
    The scheduler starts the drift monitor, the nightly backtest and the batch forecast because each
    run's asset event says a day is online, and the scoring because the forecast's event says the
    day's forecasts are stored (asset-triggered runs); they judge the event's day. The batch forecast
    stores one forecast per entity, step and day, and the offline features still hold the newest day
    (a backfill never takes them back)."""
    base, auth, platform = airflow_api
    dags = f"{base}/api/v2/dags"
    consumers = ("drift_monitor_synthetic", "nightly_backtest_synthetic", "forecast_synthetic", "score_synthetic")
    for dag_id in ("ingest_synthetic", *consumers):
        answered(lambda dag_id=dag_id: requests.get(f"{dags}/{dag_id}", headers=auth, timeout=5).ok, 180, dag_id)
        _unpause(f"{dags}/{dag_id}", auth)
    days = [SYNTHETIC_END - timedelta(days=n) for n in (3, 2, 1)]
    start = datetime(days[0].year, days[0].month, days[0].day, tzinfo=UTC)
    body = {
        "dag_id": "ingest_synthetic",
        "from_date": start.isoformat(),
        "to_date": (start + timedelta(days=2, hours=2)).isoformat(),
        "max_active_runs": 1,
        "reprocess_behavior": "none",
    }
    backfill_id = _post(f"{base}/api/v2/backfills", body, auth)["id"]
    runs_url = f"{base}/api/v2/dags/ingest_synthetic/dagRuns"

    def backfill_runs() -> list[dict[str, str]] | None:
        runs = requests.get(runs_url, params={"run_type": "backfill"}, headers=auth, timeout=10).json()["dag_runs"]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        return done if len(done) == 3 else None

    runs = sorted(answered(backfill_runs, RUN_SECONDS, "three backfill runs finished"), key=lambda r: r["logical_date"])
    assert [r["state"] for r in runs] == ["success"] * 3
    assert [datetime.fromisoformat(r["data_interval_start"]).date() for r in runs] == days
    for earlier, later in itertools.pairwise(runs):
        assert earlier["end_date"] <= later["start_date"], "one day at a time, oldest first"
    assert requests.get(f"{base}/api/v2/backfills/{backfill_id}", headers=auth, timeout=10).ok

    with platform:
        from feature_store.features import offline_source
        from forecast_store import store

        settings = platform.settings()

        def forecast_days() -> set[object] | None:
            stored = {r.data_date for r in store.issued(settings, "synthetic")}
            return stored if set(days) <= stored else None

        answered(forecast_days, RUN_SECONDS, "the backfilled days forecast")
        issued = store.issued(settings, "synthetic")
        keys = [(r.data_date, r.entity_id, r.step) for r in issued]
        assert len(keys) == len(set(keys)), "no forecast stored twice, the newest day's neither"
        assert len([key for key in keys if key[0] in days]) == 3 * 2 * 6, "one per entity, step and backfilled day"
        from core.dataset import DatasetConfig

        held = offline_source(settings, DatasetConfig.from_yaml(platform.config, settings))
    assert held is not None
    assert held.logical_date == SYNTHETIC_END

    def consumer_runs(dag_id: str) -> list[str] | None:
        runs = requests.get(f"{dags}/{dag_id}/dagRuns", headers=auth, timeout=10).json()["dag_runs"]
        done = [r["state"] for r in runs if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
        return done if len(done) >= len(days) else None

    for dag_id in consumers:
        states = answered(lambda dag_id=dag_id: consumer_runs(dag_id), RUN_SECONDS, f"{dag_id} started by the assets")
        assert set(states) == {"success"}, (dag_id, states)
    with platform:
        from model_registry.tracking import client

        mlflow = client(settings)
        experiment = mlflow.get_experiment_by_name(settings.mlflow_experiment)
        checks = mlflow.search_runs([experiment.experiment_id], "tags.job = 'drift_monitor'")
    judged = sorted((r.data.tags["check_date"], r.data.tags["data_date"]) for r in checks)
    assert judged == [(day.isoformat(), day.isoformat()) for day in days], "each event's own day"


def test_a_task_that_prints_platform_credentials_shows_them_masked_in_its_log(airflow_api) -> None:  # type: ignore[no-untyped-def]
    """The DAGs' default arguments register the MLOPS_* credentials with Airflow's secrets masker
    before each task: Airflow masks only its own connections' secrets by itself."""
    base, auth, _ = airflow_api
    dag_url = f"{base}/api/v2/dags/leaky"
    answered(lambda: requests.get(dag_url, headers=auth, timeout=5).ok, 180, "leaky DAG parsed")
    _unpause(dag_url, auth)
    created = _post(f"{dag_url}/dagRuns", {"logical_date": None}, auth)
    run_url = f"{dag_url}/dagRuns/{created['dag_run_id']}"

    def finished() -> str | None:
        state = requests.get(run_url, headers=auth, timeout=10).json()["state"]
        return state if state in ("success", "failed") else None

    assert answered(finished, 300, "leaky run finished") == "success"
    answer = requests.get(f"{run_url}/taskInstances/print_credentials/logs/1", headers=auth, timeout=30)
    assert answer.ok, answer.text
    log = answer.text
    assert "redis password: ***" in log
    assert "admin token ***" in log
    assert REDIS_PASSWORD not in log
    assert ADMIN_TOKEN not in log
