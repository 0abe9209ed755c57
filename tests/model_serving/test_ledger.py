"""The online forecast ledger: what the service answered is what the forecast table holds."""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from core.dataset import DatasetConfig
from core.settings import Settings
from forecast_store import store
from forecast_store.schema import ONLINE
from model_serving.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ENTITIES = ("site_0", "site_1")


def on_own_table(trained: tuple[Settings, DatasetConfig], tmp_path: Path, **update: Any) -> Settings:
    forecasts = f"sqlite:///{tmp_path / 'forecasts.db'}"
    return trained[0].model_copy(update={"model_poll_seconds": 0, "forecast_db": forecasts, **update})


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


def test_a_full_buffer_drops_and_counts_and_never_holds_a_request(
    trained: tuple[Settings, DatasetConfig], tmp_path: Path
) -> None:
    """The table is locked (a long transaction of another writer) while requests come: they are all
    answered until the buffer of 5 (and the writer's queue) is full and one is dropped and counted;
    once the lock goes, the kept ones are written. Answered = stored + dropped."""
    settings = on_own_table(trained, tmp_path, forecast_ledger_buffer=5)
    store.upgrade(settings)
    before = dropped("buffer_full")
    locker = sqlite3.connect(tmp_path / "forecasts.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with TestClient(create_app(settings)) as client:
            # Requests until the buffer is full and one is dropped (the writer waits on the lock).
            answered: list[dict[str, Any]] = []
            deadline = time.monotonic() + 120
            n = 0
            while dropped("buffer_full") == before:
                assert time.monotonic() < deadline, "no forecast dropped with the table locked"
                n += 1
                answered += ask(client, 3 * n + 1)  # single forecasts
            locker.execute("ROLLBACK")
    finally:
        locker.close()
    lost = dropped("buffer_full") - before
    assert lost > 0
    assert sum(stored_rows(settings).values()) == (len(answered) - lost) * trained[1].horizon
    assert stored_rows(settings) <= as_rows(answered)


def test_the_ledger_is_a_setting(trained: tuple[Settings, DatasetConfig], tmp_path: Path) -> None:
    settings = on_own_table(trained, tmp_path, forecast_ledger=False)
    with TestClient(create_app(settings)) as client:
        assert len(ask(client, 1)) == 1
    assert not (tmp_path / "forecasts.db").exists()
