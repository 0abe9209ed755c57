"""``python -m benchmarks.m4`` on a few weekly series: every row scored, the peers' forecasts matched to
their series, and the report beside the published rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.m4 import data, peers, report
from benchmarks.m4.__main__ import main


def test_forecasts_come_back_in_the_files_order_of_series() -> None:
    series = data.M4Series(ids=["W2", "W10", "W1"], train=[np.ones(3)] * 3, test=np.zeros((3, 2)))
    frame = pd.DataFrame({"unique_id": ["W1", "W1", "W10", "W10", "W2", "W2"], "m": [1.0, 2.0, 10.0, 20.0, 3.0, 4.0]})
    assert peers._in_order(frame, series, "m", 2).tolist() == [[3.0, 4.0], [10.0, 20.0], [1.0, 2.0]]


def test_mlforecast_lags_cover_a_season_or_the_horizon() -> None:
    assert peers.mlforecast_lags(data.FREQUENCIES["hourly"]) == [*range(1, 49), 168]
    assert peers.mlforecast_lags(data.FREQUENCIES["weekly"]) == [*range(1, 14), 52]


def test_conformal_windows_fit_the_shortest_series_after_its_longest_lag() -> None:
    hourly = data.M4Series(ids=["H1"], train=[np.ones(700)], test=np.zeros((1, 48)))
    assert peers.conformal_windows(hourly, data.FREQUENCIES["hourly"]) == 10  # room for 11: capped
    weekly = data.M4Series(ids=["W1"], train=[np.ones(80)], test=np.zeros((1, 13)))
    assert peers.conformal_windows(weekly, data.FREQUENCIES["weekly"]) == 2  # (80 - 52 - 1) // 13


@pytest.mark.slow
def test_the_report_scores_every_model_beside_the_published_rows(tmp_path: Path) -> None:
    argv = [
        "--frequencies",
        "weekly",
        "--series",
        "8",
        "--models",
        "AutoETS",
        "mlforecast_lightgbm",
        "platform_auto_ets",
        "platform_selection",
        "--jobs",
        "1",
    ]
    # One process: statsforecast's pool forks, and a fork of this worker (threads of other tests' clients
    # alive) hung once for the whole timeout.
    assert main([*argv, "--out", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "m4.json").read_text())
    rows = {row["model"]: row for row in document["rows"]}
    assert list(rows) == [
        "Naive2", "sNaive", "Naive", "AutoETS", "mlforecast_lightgbm", "platform_auto_ets", "platform_selection"
    ]  # fmt: skip
    assert all(set(report.ROW_KEYS) <= row.keys() for row in rows.values())
    assert rows["Naive2"]["owa"] == 1.0, "OWA's reference is the Naive2 of the same run"
    assert document["series"] == {"weekly": 8}
    for peer in ("AutoETS", "mlforecast_lightgbm"):
        row = rows[peer]
        assert row["msis"] is not None, row
        assert row["acd"] is not None, row
        assert row["fit_s"] >= 0, row
    for model in ("AutoETS", "mlforecast_lightgbm", "platform_selection"):
        # A model forecasting these 8 series is in the range of the naive benchmarks, not off by a scale.
        assert rows[model]["mase"] < 10 * rows["Naive"]["mase"], rows[model]
    # The platform's AutoETS is statsforecast's, fitted per series by the platform's trainer and
    # continued from its state at the end of training: the very forecasts of the peer.
    for metric in ("smape", "mase", "owa"):
        assert rows["platform_auto_ets"][metric] == pytest.approx(rows["AutoETS"][metric], rel=1e-9), metric
    assert rows["platform_auto_ets"]["msis"] is None, "no interval without a backtest's errors"
    selection = rows["platform_selection"]  # the 95 % band a bundle carries, scored by M4's rules
    assert selection["msis"] is not None, selection
    assert 0 <= selection["acd"] <= 0.95, selection
    assert selection["msis"] < 10 * rows["AutoETS"]["msis"], (selection, rows["AutoETS"])
    best = min(report._published("published_point.csv"), key=lambda r: float(r["owa_weekly"]))
    assert document["published"]["weekly"][0]["owa"] == float(best["owa_weekly"])
    markdown = (tmp_path / "m4.md").read_text()
    assert "| AutoETS |" in markdown
    assert "| best submission (OWA) | Darin, S. & Stellwagen, E." in markdown
    assert (tmp_path / "m4.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
