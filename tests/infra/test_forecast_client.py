"""infra/scripts/forecast_client.py: the forecast as a table by default, the service's JSON on demand.

The bodies are built with the service's own response model, so a change of its shape shows here.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT
from model_serving.schemas import Band, Forecast, ForecastPoint

sys.path.insert(0, str(PROJECT_ROOT / "infra" / "scripts"))
from forecast_client import main, table

START = datetime(2018, 6, 27, tzinfo=UTC)


def _body(levels: list[float], steps: int = 3, note: str | None = None) -> dict[str, Any]:
    points = [
        ForecastPoint(
            timestamp=START + timedelta(hours=step),
            value=10.0 + step,
            intervals=[
                Band(level=level, lower=10.0 + step - 10 * level, upper=10.0 + step + 10 * level) for level in levels
            ],
        )
        for step in range(steps)
    ]
    forecast = Forecast(
        entity_id="ETTh1",
        model_name="ett_forecaster",
        model_version="2",
        feature_event_time=START - timedelta(hours=1),
        feature_age_seconds=3600.0,
        stale=False,
        interval_levels=levels,
        note=note,
        forecast=points,
    )
    return forecast.model_dump(mode="json")


def test_the_table_has_a_row_per_step_with_each_levels_bounds() -> None:
    lines = table(_body([0.8, 0.95])).splitlines()
    assert lines[0] == "ETTh1: ett_forecaster v2"
    assert lines[1].split() == [
        "step",
        "time",
        "forecast",
        "80%",
        "lower",
        "80%",
        "upper",
        "95%",
        "lower",
        "95%",
        "upper",
    ]
    assert lines[2].split() == ["1", "2018-06-27T00:00:00Z", "10.000", "2.000", "18.000", "0.500", "19.500"]
    assert lines[4].split() == ["3", "2018-06-27T02:00:00Z", "12.000", "4.000", "20.000", "2.500", "21.500"]
    assert len(lines) == 2 + 3
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns


def test_a_forecast_without_bands_says_why() -> None:
    lines = table(_body([], steps=2, note="the version has no intervals")).splitlines()
    assert lines[0] == "ETTh1: ett_forecaster v2 (no intervals: the version has no intervals)"
    assert lines[1].split() == ["step", "time", "forecast"]
    assert lines[3].split() == ["2", "2018-06-27T01:00:00Z", "11.000"]


class _Service(BaseHTTPRequestHandler):
    body: dict[str, Any] = {}

    def do_GET(self) -> None:  # /health/ready
        self._answer({"ready": True})

    def do_POST(self) -> None:  # /v1/forecast
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(self.body)

    def _answer(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    _Service.body = _body([0.8, 0.95])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Service)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_table_by_default_and_the_json_behind_a_flag(
    service: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "forecast.json"
    assert main(["--url", service, "--entity", "ETTh1", "--wait", "5", "--save", str(saved)]) == 0
    out = capsys.readouterr().out
    assert out == table(_Service.body) + "\n"
    assert json.loads(saved.read_text()) == _Service.body

    assert main(["--url", service, "--entity", "ETTh1", "--wait", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == _Service.body


def test_a_long_horizon_shows_its_first_steps_and_says_how_many_more() -> None:
    lines = table(_body([0.8], steps=30), max_steps=24).splitlines()
    assert len(lines) == 1 + 1 + 24 + 1  # title, header, the steps shown, the rest counted
    assert lines[-2].split()[0] == "24"
    assert lines[-1] == "  ... 6 more steps (--json prints them all)"
    assert table(_body([0.8], steps=3), max_steps=24) == table(_body([0.8], steps=3))


def test_the_title_names_the_family_and_the_candidates_that_answered() -> None:
    body = _body([0.8]) | {"model_family": "selection", "answered_by": ["naive"]}
    assert table(body).splitlines()[0] == "ETTh1: ett_forecaster v2 (selection: naive)"
    assert table(_body([0.8]) | {"model_family": "xgboost"}).splitlines()[0] == "ETTh1: ett_forecaster v2 (xgboost)"
