"""One real scrape for the monitoring tests: the service under traffic and the batch jobs' pushes.

Starting the service and running the batch jobs takes most of the monitoring tests' time, so the
dashboard tests share one scrape (package scope) instead of each producing its own series.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import on_registry_copy
from tests.utils.prometheus import Scrape, project_prometheus, wait_until
from tests.utils.servers import free_port, server_process


@pytest.fixture(scope="package")
def scrape(
    trained: tuple[Settings, DatasetConfig], pushgateway: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scrape]:
    """The service after traffic (known and unknown entities, single and batch), and the figures the
    batch jobs push as their DAGs do, scraped every second; the trained settings run on a copy of the
    MLflow database (the batch jobs add runs)."""
    from core.settings import child_environment
    from model_serving.batch import issue_day
    from model_validation.decision import publish_run
    from monitoring import forecast_scoring
    from monitoring.champion_backtest import backtest_registered, publish
    from monitoring.champion_drift import check_champion

    tmp = tmp_path_factory.mktemp("scrape")
    dataset = trained[1]
    settings = on_registry_copy(
        trained[0], tmp, pushgateway_url=pushgateway, forecast_db=f"sqlite:///{tmp / 'forecasts.db'}"
    )
    port = free_port()
    env = child_environment(settings, serving_port=port)
    base = f"http://127.0.0.1:{port}"
    service = [sys.executable, "-m", "model_serving"]
    scraped = {"forecast-service": f"127.0.0.1:{port}", "pushgateway": pushgateway.removeprefix("http://")}
    with (
        server_process(service, port, timeout=180, env=env, cwd=PROJECT_ROOT),
        project_prometheus(tmp, scraped) as prometheus,
    ):
        wait_until(lambda: requests.get(f"{base}/health/ready", timeout=5).status_code == 200, "service ready")
        # Traffic for a while (rates need two scrapes), known and unknown entities.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            for entity in ("site_0", "site_1", "nobody"):
                requests.post(f"{base}/v1/forecast", json={"entity_id": entity}, timeout=10)
            requests.post(f"{base}/v1/forecast/batch", json={"entity_ids": ["site_0", "site_1"]}, timeout=10)
        # The batch jobs push their own figures, as their DAGs do.
        check_champion(settings, dataset, SYNTHETIC_END)
        publish(settings, dataset, backtest_registered(settings, dataset, SYNTHETIC_END))
        publish_run(settings, dataset.name, promoted=True)
        issue_day(settings, dataset, SYNTHETIC_END - timedelta(days=1))  # a day's forecasts, scored the next day
        forecast_scoring.publish(settings, dataset, forecast_scoring.score_day(settings, dataset, SYNTHETIC_END))
        yield Scrape(prometheus, dataset.name)
