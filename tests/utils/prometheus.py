"""Prometheus for the monitoring tests: the project's own config against local ports, and its HTTP API."""

from __future__ import annotations

import contextlib
import time
import urllib.error
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml

from core.settings import PROJECT_ROOT
from tests.utils.servers import free_port, server_process

MONITORING = PROJECT_ROOT / "monitoring"
PROMETHEUS_CONFIG = MONITORING / "prometheus" / "prometheus.yml"
ALERT_RULES = MONITORING / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))


@dataclass(frozen=True)
class Scrape:
    """A Prometheus (the project's config and rules) that scrapes the serving app and the Pushgateway;
    ``dataset`` names the dataset whose batch figures were pushed."""

    prometheus: str
    dataset: str


@contextlib.contextmanager
def project_prometheus(tmp: Path, targets: dict[str, str]) -> Iterator[str]:
    """Debian's prometheus on the project's config and rules, scraping every second at local ports."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    port = free_port()
    targets = {**targets, "prometheus": f"127.0.0.1:{port}"}
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_CONFIG.parent / name) for name in config["rule_files"]]
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets.get(job["job_name"], f"127.0.0.1:{free_port()}")]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    argv = ["prometheus", f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with server_process(argv, port, timeout=60):
        yield f"http://127.0.0.1:{port}"


def wait_until(check: Callable[[], Any], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(requests.RequestException, urllib.error.URLError):
            if check():
                return
        assert time.monotonic() < deadline, f"not {what} after {timeout:.0f} s"
        time.sleep(0.5)


def query_until_data(prometheus: str, expression: str, timeout: float = 30.0) -> list[Any]:
    """The query's result once it has one (scrapes and rule evaluations come every second)."""
    deadline = time.monotonic() + timeout
    while True:
        body = requests.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5).json()
        assert body["status"] == "success", (expression, body)
        if body["data"]["result"] or time.monotonic() > deadline:
            return list(body["data"]["result"])
        time.sleep(0.5)
