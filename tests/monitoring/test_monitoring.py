"""Prometheus config, alert rules and Grafana dashboards against a real Prometheus.

The alert rules are unit-tested with ``promtool test rules``. The dashboards are checked end to end:
Debian's ``prometheus`` runs the project's own ``prometheus.yml`` (targets pointed at local ports)
scraping the serving app and the Pushgateway, the app gets traffic, the batch jobs push their real
figures (the ``scrape`` fixture, shared with test_dashboards.py), and every panel's query must return data.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.utils.prometheus import DASHBOARDS, MONITORING, PROMETHEUS_CONFIG, Scrape, query_until_data

pytestmark = [pytest.mark.integration]

ALERT_TESTS = MONITORING / "prometheus" / "tests" / "alerts_test.yml"
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def test_prometheus_config_and_rules_are_valid() -> None:
    result = subprocess.run(["promtool", "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    result = subprocess.run(["promtool", "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_test() -> None:
    rules = yaml.safe_load((PROMETHEUS_CONFIG.parent / "alerts.yml").read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert alerts == fired


def test_dashboards_are_well_formed_and_use_the_provisioned_datasource() -> None:
    assert {d.stem for d in DASHBOARDS} == {"serving", "model_quality_drift"}
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    uids = set()
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        uids.add(dashboard["uid"])
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), path.name
        for panel in dashboard["panels"]:
            assert panel["title"]
            assert panel["description"]
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"]
            assert all(t["datasource"]["uid"] == uid and t["expr"] for t in panel["targets"])
    assert len(uids) == len(DASHBOARDS)


def panel_queries(values: dict[str, str]) -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) of every panel target, with Grafana's variables filled in."""
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expression = target["expr"]
                for name, value in values.items():
                    expression = expression.replace(f"${name}", value)
                assert "$" not in expression, f"unfilled variable in {path.name} / {panel['title']}: {expression}"
                queries.append((path.stem, panel["title"], expression))
    return queries


@pytest.mark.slow
def test_every_dashboard_panel_query_returns_data(scrape: Scrape) -> None:
    empty = []
    variables = {"__rate_interval": "15s", "dataset": scrape.dataset, "entity": ".*"}
    for dashboard, title, expression in panel_queries(variables):
        if not query_until_data(scrape.prometheus, expression):
            empty.append(f"{dashboard} / {title}: {expression}")
    assert empty == []

    rules = requests.get(f"{scrape.prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    loaded = [rule for group in rules for rule in group["rules"]]
    defined = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())["groups"]
    assert sorted(r["name"] for r in loaded) == sorted(r["alert"] for group in defined for r in group["rules"])
    assert {rule["health"] for rule in loaded} == {"ok"}, [r for r in loaded if r["health"] != "ok"]


STATSD_MAPPING = MONITORING / "statsd" / "mapping.yml"
PROBE_DAG = """
from datetime import datetime
from airflow.sdk import dag, task

@dag(dag_id="statsd_probe", schedule=None, start_date=datetime(2024, 1, 1))
def statsd_probe():
    @task
    def hello() -> int:
        return 1
    hello()

statsd_probe()
"""


def glob_match(pattern: str, name: str) -> list[str] | None:
    """statsd-exporter's glob: ``*`` stands for one dot-separated part; returns the parts it took."""
    expected, actual = pattern.split("."), name.split(".")
    if len(expected) != len(actual):
        return None
    captured = []
    for want, got in zip(expected, actual, strict=True):
        if want == "*":
            captured.append(got)
        elif want != got:
            return None
    return captured


def airflow_statsd_names(tmp_path: Path, expected: set[str]) -> set[str]:
    """The StatsD metric names Airflow itself sends while it runs a one-task DAG (``dag.test()``, in a
    process of its own so its metrics client starts with StatsD on), received on a UDP socket.

    Datagrams the run sent may still be on their way to the listener when the run exits: the
    listener keeps reading until every ``expected`` name has come (or a deadline passes, and then
    the caller's assertions name what is missing).
    """
    import socket
    import threading

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    received: list[str] = []
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                received.extend(receiver.recv(65535).decode().splitlines())

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "statsd_probe.py").write_text(PROBE_DAG)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(receiver.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    run = "from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder={!r}).get_dag('statsd_probe').test()"
    listener = threading.Thread(target=listen)
    listener.start()
    try:
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
        subprocess.run([sys.executable, "-c", run.format(str(dags))], env=env, check=True, capture_output=True,
                       timeout=300)  # fmt: skip
        deadline = time.monotonic() + 30
        while not expected <= {line.split(":", 1)[0] for line in list(received)} and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        listener.join()
        receiver.close()
    return {line.split(":", 1)[0] for line in received}


def fill(template: str, captured: list[str]) -> str:
    """A label template with ``$n`` replaced by the n-th part a glob took."""
    return re.sub(r"\$(\d+)", lambda m: captured[int(m.group(1)) - 1], template)


def test_the_statsd_mapping_turns_what_airflow_emits_into_labelled_metrics(tmp_path: Path) -> None:
    mapping = yaml.safe_load(STATSD_MAPPING.read_text())
    for rule in mapping["mappings"]:
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["name"]), rule["name"]
        wildcards = rule["match"].split(".").count("*")
        used = {int(n) for value in rule.get("labels", {}).values() for n in re.findall(r"\$(\d+)", value)}
        assert used == set(range(1, wildcards + 1)), rule["match"]

    names = airflow_statsd_names(
        tmp_path, {"airflow.ti.finish.statsd_probe.hello.success", "airflow.dag.statsd_probe.hello.duration"}
    )
    assert "airflow.ti.finish.statsd_probe.hello.success" in names, sorted(names)

    def mapped(name: str) -> tuple[str, dict[str, str]] | None:
        for rule in mapping["mappings"]:
            captured = glob_match(rule["match"], name)
            if captured is not None:
                return rule["name"], {k: fill(v, captured) for k, v in rule.get("labels", {}).items()}
        return None

    assert mapped("airflow.ti.finish.statsd_probe.hello.success") == (
        "airflow_task_instances_finished_total",
        {"dag_id": "statsd_probe", "task_id": "hello", "state": "success"},
    )
    assert mapped("airflow.dag.statsd_probe.hello.duration") == (
        "airflow_task_duration_seconds",
        {"dag_id": "statsd_probe", "task_id": "hello"},
    )
    assert "airflow.dag.statsd_probe.hello.duration" in names
