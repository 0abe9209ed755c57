"""The online forecast ledger: what the service answered is what the forecast table holds."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings, child_environment
from forecast_store import store
from forecast_store.schema import ONLINE
from forecast_store.spool import spool_directory
from model_serving.app import create_app
from tests.utils.servers import free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTITIES = ("site_0", "site_1")


def on_own_table(trained: tuple[Settings, DatasetConfig], tmp_path: Path, **update: Any) -> Settings:
    """The trained champion's settings with a table and a spool of the test's own."""
    forecasts = f"sqlite:///{tmp_path / 'forecasts.db'}"
    own = {"model_poll_seconds": 0, "forecast_db": forecasts, "forecast_ledger_spool": tmp_path / "spool"}
    return trained[0].model_copy(update={**own, **update})


def ask(client: TestClient, n: int) -> list[dict[str, Any]]:
    """Request ``n`` of a mix of single and batch forecasts; the forecasts answered."""
    if n % 3 == 0:
        answer = client.post("/v1/forecast/batch", json={"entity_ids": list(ENTITIES)})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["forecasts"])
    answer = client.post("/v1/forecast", json={"entity_id": ENTITIES[n % 2]})
    assert answer.status_code == 200, answer.text
    return [answer.json()]


Step = tuple[str, str, int, str, float, tuple[tuple[float, float, float], ...]]


def as_rows(forecasts: list[dict[str, Any]]) -> Counter[Step]:
    return Counter(
        (
            f["entity_id"],
            f["model_version"],
            step,
            p["timestamp"][:19],
            round(p["value"], 6),
            tuple((b["level"], round(b["lower"], 6), round(b["upper"], 6)) for b in p["intervals"]),
        )
        for f in forecasts
        for step, p in enumerate(f["forecast"], start=1)
    )


def stored_rows(settings: Settings) -> Counter[Step]:
    """The stored forecasts' steps with their bands, each counted as many times as it was answered."""
    rows = store.issued(settings, "synthetic", source=ONLINE)
    return Counter(
        {
            (
                r.entity_id,
                r.model_version,
                r.step,
                r.target_time.isoformat()[:19],
                round(r.value, 6),
                tuple((level, round(lower, 6), round(upper, 6)) for level, lower, upper in r.intervals),
            ): r.answers
            for r in rows
        }
    )


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("forecast_ledger_dropped_total", {"reason": reason}) or 0.0


def test_every_forecast_answered_under_concurrent_requests_is_stored_once(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    settings = on_own_table(trained, tmp_path)
    recorded = REGISTRY.get_sample_value("forecast_ledger_recorded_total") or 0.0
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(8) as pool:
        answered = [f for forecasts in pool.map(lambda n: ask(client, n), range(300)) for f in forecasts]
    # Leaving the client stopped the service, which wrote what was still buffered.
    assert len(answered) == 400
    assert all(p["intervals"] for f in answered for p in f["forecast"])  # the bands are stored with them
    assert stored_rows(settings) == as_rows(answered)
    # Two entities and one version, features unchanged: two forecasts, each stored once, answered 400 times.
    horizon = trained[1].horizon
    assert len(store.issued(settings, "synthetic", source=ONLINE)) == len(set(as_rows(answered))) == 2 * horizon
    assert (REGISTRY.get_sample_value("forecast_ledger_recorded_total") or 0.0) - recorded == 400
    issued = store.issued(settings, "synthetic", source=ONLINE)
    assert {(r.source, r.dag_run_id) for r in issued} == {(ONLINE, None)}
    assert all(r.target_time > r.issue_time for r in issued)


def spooled_bytes(settings: Settings) -> int:
    """Bytes in the settings' spool segments (what waits for the table, and what was written but not
    yet deleted)."""
    directory = spool_directory(settings, "synthetic")
    return sum(p.stat().st_size for p in directory.glob("*.seg")) if directory.exists() else 0


def test_forecasts_answered_while_the_table_is_locked_wait_in_the_spool_and_are_all_stored(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """The table is locked (a long transaction of another writer) while requests come: every one is
    answered, nothing is dropped, the spool holds them; once the lock goes, all are written, once."""
    settings = on_own_table(trained, tmp_path)
    store.upgrade(settings)
    before = dropped("spool_full") + dropped("spool_failed")
    locker = sqlite3.connect(tmp_path / "forecasts.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with TestClient(create_app(settings)) as client:
            answered = [f for n in range(60) for f in ask(client, n)]
            waiting = lambda: REGISTRY.get_sample_value("forecast_ledger_spool_bytes") or 0.0  # noqa: E731
            wait_for(lambda: waiting() > 0, "the spool's backlog in the metrics", 30)
            assert locker.execute("SELECT COUNT(*) FROM forecasts").fetchone() == (0,), "nothing passed the lock"
            locker.execute("ROLLBACK")
    finally:
        locker.close()
    assert dropped("spool_full") + dropped("spool_failed") == before
    assert stored_rows(settings) == as_rows(answered)
    assert spooled_bytes(settings) == 0, "a drained segment is deleted"


def test_a_killed_service_loses_no_answered_forecast_and_the_next_one_writes_each_once(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """A service process (worker and writer) SIGKILLed while the table is locked: what it answered is
    in its spool on disk. The next service of the same table claims the dead worker's segment and
    writes every answered forecast, once."""
    settings = on_own_table(trained, tmp_path)
    store.upgrade(settings)
    port = free_port()
    env = child_environment(settings, serving_port=port)
    base = f"http://127.0.0.1:{port}"
    locker = sqlite3.connect(tmp_path / "forecasts.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    answered: list[dict[str, Any]] = []
    service = subprocess.Popen(
        [sys.executable, "-m", "model_serving"], env=env, cwd=PROJECT_ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _ready(base), "the service's readiness", 180)
        for n in range(40):
            if n % 3 == 0:
                answer = requests.post(f"{base}/v1/forecast/batch", json={"entity_ids": list(ENTITIES)}, timeout=30)
                answered += answer.json()["forecasts"]
            else:
                answered.append(
                    requests.post(f"{base}/v1/forecast", json={"entity_id": ENTITIES[n % 2]}, timeout=30).json()
                )
        os.killpg(service.pid, signal.SIGKILL)  # the worker and its writer, as a lost container
        service.wait(timeout=30)
    finally:
        if service.poll() is None:
            os.killpg(service.pid, signal.SIGKILL)
        locker.execute("ROLLBACK")
        locker.close()
    assert len(answered) == 40 + 14
    assert store.issued(settings, "synthetic", source=ONLINE) == [], "nothing reached the locked table"
    assert spooled_bytes(settings) > 0
    with TestClient(create_app(settings)):
        wait_for(lambda: spooled_bytes(settings) == 0, "the dead worker's segment drained", 60)
    assert stored_rows(settings) == as_rows(answered)


def test_a_dead_writer_is_started_again_counted_and_loses_nothing(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    settings = on_own_table(trained, tmp_path)
    restarts = REGISTRY.get_sample_value("forecast_ledger_writer_restarts_total") or 0.0
    with TestClient(create_app(settings)) as client:
        ledger = client.app.state.runtime.ledger  # type: ignore[attr-defined]
        answered = [f for n in range(20) for f in ask(client, n)]
        first = ledger.writer_pid
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: ledger.writer_pid != first, "a new writer", 30)
        answered += [f for n in range(20) for f in ask(client, n)]
    assert (REGISTRY.get_sample_value("forecast_ledger_writer_restarts_total") or 0.0) - restarts == 1
    assert stored_rows(settings) == as_rows(answered)


def _ready(base: str) -> bool:
    try:
        return requests.get(f"{base}/health/ready", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_the_ledger_is_a_setting(trained: tuple[Settings, DatasetConfig], tmp_path: Path) -> None:
    settings = on_own_table(trained, tmp_path, forecast_ledger=False)
    with TestClient(create_app(settings)) as client:
        assert len(ask(client, 1)) == 1
    assert not (tmp_path / "forecasts.db").exists()
    assert not spool_directory(settings, "synthetic").exists()
