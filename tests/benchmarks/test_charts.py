"""The benchmarks' charts: drawn from the rows their JSON holds, refusing rows they cannot draw."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import charts
from benchmarks.accuracy.intervals import IntervalResult
from benchmarks.accuracy.models import Report, Result
from benchmarks.accuracy.protocol import BenchmarkConfig
from benchmarks.accuracy.report import write_report
from benchmarks.serving import measurement, plan, report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# (series, model, horizon) -> (MSE, MAE), and the published pair where the paper has one.
OURS = {
    ("ETTh1", "seasonal_naive", 96): (0.136, 0.281),
    ("ETTh1", "seasonal_naive", 336): (0.151, 0.301),
    ("ETTh1", "nlinear", 96): (0.054, 0.178),
    ("ETTh1", "nlinear", 336): (0.082, 0.227),
    ("ETTh1", "xgboost", 96): (0.061, 0.190),
    ("ETTh2", "seasonal_naive", 96): (0.260, 0.392),
    ("ETTh2", "nlinear", 96): (0.129, 0.278),
    ("ETTh2", "nlinear", 336): (0.168, 0.329),
}
PUBLISHED = {("ETTh1", "nlinear", 96): (0.053, 0.177), ("ETTh1", "nlinear", 336): (0.081, 0.226)}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, after checking it is one."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """The figures the charts close, kept open for a look at what they drew, closed after the test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    close = plt.close
    kept: list[Any] = []
    monkeypatch.setattr(plt, "close", kept.append)
    yield kept
    for figure in kept:
        close(figure)


def accuracy_rows(tmp_path: Path, series: tuple[str, ...] = ("ETTh1", "ETTh2"), chart: bool = False) -> list[Any]:
    """The rows of ``accuracy.json`` as the benchmark writes them (its own report writer), with an
    interval row after the point rows."""
    results = []
    for (name, model, horizon), (mse, mae) in OURS.items():
        if name in series:
            published: tuple[float | None, float | None] = PUBLISHED.get((name, model, horizon), (None, None))
            results.append(Result(name, model, horizon, mse, mae, *published, validation_mse=mse, fit_seconds=1.0))
    intervals = [IntervalResult(series[0], "nlinear", 96, 0.8, 0.79, 0.5, 0.7, 100, "split conformal", 30, 0.054)]
    config = BenchmarkConfig.model_validate(
        {
            "dataset": tmp_path / "ett.yaml",
            "series": list(series),
            "lookback": 336,
            "horizons": [96, 336],
            "split": {"train": 8640, "validation": 2880, "test": 2880},
            "models": {"seasonal_naive": [96, 336], "nlinear": [96, 336], "xgboost": [96]},
        }
    )
    out = tmp_path / "reports"
    path = write_report(Report(results, intervals), [], config, out, chart=chart)
    rows: list[Any] = json.loads(path.read_text())
    return rows


def test_the_accuracy_report_carries_its_chart(tmp_path: Path) -> None:
    rows = accuracy_rows(tmp_path, chart=True)
    png = tmp_path / "reports" / "accuracy.png"
    width, height = png_size(png)
    assert 800 <= width <= 2500
    assert 500 <= height <= 2500
    assert png.stat().st_size > 20_000, "a chart with lines and text, not an empty canvas"
    markdown = (tmp_path / "reports" / "accuracy.md").read_text()
    assert "](accuracy.png)" in markdown
    assert markdown.index("](accuracy.png)") < markdown.index("## Targets")
    assert any("level" in row for row in rows), "interval rows are in the JSON, and skipped by the chart"

    without = tmp_path / "plain"
    without.mkdir()
    accuracy_rows(without)
    assert not (without / "reports" / "accuracy.png").exists()
    assert "accuracy.png" not in (without / "reports" / "accuracy.md").read_text()


def test_accuracy_draws_a_row_of_panels_per_series_with_the_published_numbers_dashed(
    tmp_path: Path, figures: list[Any]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    charts.accuracy_chart(accuracy_rows(one, ("ETTh1",)), tmp_path / "one.png")
    charts.accuracy_chart(accuracy_rows(two), tmp_path / "two.png")
    assert png_size(tmp_path / "two.png")[1] > 1.6 * png_size(tmp_path / "one.png")[1]

    figure = figures[-1]
    assert len(figure.axes) == 4  # ETTh1 and ETTh2, MSE and MAE each
    assert [ax.get_title() for ax in figure.axes[::2]] == ["ETTh1: MSE per horizon", "ETTh2: MSE per horizon"]
    etth1_mse = figure.axes[0]
    lines = {line.get_label(): line for line in etth1_mse.get_lines()}
    assert set(lines) == {"seasonal_naive", "nlinear", "xgboost", "nlinear (published)"}
    published = lines["nlinear (published)"]
    assert published.get_linestyle() == "--"
    assert list(published.get_ydata()) == [0.053, 0.081]
    assert published.get_color() == lines["nlinear"].get_color()
    assert list(lines["nlinear"].get_xdata()) == [96, 336]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert legend == ["seasonal_naive", "nlinear", "nlinear (published)", "xgboost"]
    assert not [line for line in figure.axes[2].get_lines() if "published" in line.get_label()]  # none for ETTh2


def test_accuracy_refuses_rows_it_cannot_draw(tmp_path: Path) -> None:
    rows = accuracy_rows(tmp_path)
    del rows[1]["mse"]
    with pytest.raises(ValueError, match=r"accuracy row 1 lacks \['mse'\]"):
        charts.accuracy_chart(rows, tmp_path / "broken.png")
    intervals_only = [row for row in accuracy_rows(tmp_path) if "level" in row]
    with pytest.raises(ValueError, match="no point rows"):
        charts.accuracy_chart(intervals_only, tmp_path / "empty.png")
    assert not (tmp_path / "broken.png").exists()
    assert not (tmp_path / "empty.png").exists()


def run_row(system: str, rate: int, p99: float | None, workers: int = 1) -> dict[str, Any]:
    """A row as :func:`benchmarks.serving.measurement.run_at` writes it."""
    return {
        "system": system,
        "rate_rps": rate,
        "p50_ms": None if p99 is None else p99 / 2,
        "p99_ms": p99,
        "achieved_rps": float(rate),
        "errors": 0,
        "requests": rate * 12,
        "seconds": 12.0,
        "workers": workers,
        "send_lag_p99_ms": 0.2,
    }


def serving_rows(tmp_path: Path) -> list[dict[str, Any]]:
    """One run of every kind of row ``serving.json`` holds: a system per rate, ours with two workers at
    the high rates, and a pair in turns (a row per round, then :func:`measurement.pooled_row`'s)."""
    rows = [run_row(plan.FLOOR, rate, p99) for rate, p99 in zip(plan.RATES, (1.1, 1.3, 1.8), strict=True)]
    rows += [run_row(plan.OURS, rate, p99) for rate, p99 in zip(plan.RATES, (2.0, 2.4, 3.1), strict=True)]
    rows += [run_row(plan.FEAST, rate, p99) for rate, p99 in zip(plan.RATES, (18.0, 35.0, 90.0), strict=True)]
    rows += [run_row(plan.OURS, 500, 4.2, workers=2), run_row(plan.OURS, 1000, 7.5, workers=2)]
    for index, system in enumerate((plan.OURS_LEDGER_ON, plan.OURS_NO_LEDGER)):
        runs, files = [], []
        for round_ in range(3):
            files.append(tmp_path / f"ledger-{index}-round-{round_}.npy")
            np.save(files[-1], np.full(100, 3.0 + index + round_))
            runs.append({**run_row(system, plan.OURS_P99_TARGET_RATE, 3.0 + index + round_), "round": round_})
        rows += [*runs, measurement.pooled_row(runs, files)]
    return rows


def test_the_serving_chart_draws_a_line_per_system_from_the_pooled_rows(tmp_path: Path, figures: list[Any]) -> None:
    assert charts.POOLED_ROUND == plan.POOLED
    path = charts.serving_chart(serving_rows(tmp_path), tmp_path / "serving.png")
    width, height = png_size(path)
    assert 700 <= width <= 2000
    assert 400 <= height <= 1200

    [ax] = figures[-1].axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"floor", "ours", "feast serve", "ours (2 workers)", "ours, ledger on", "ours, ledger off"}
    assert list(lines["ours"].get_xdata()) == [50, 100, 200]
    assert list(lines["ours"].get_ydata()) == [2.0, 2.4, 3.1]
    assert list(lines["ours (2 workers)"].get_xdata()) == [500, 1000]
    assert lines["ours (2 workers)"].get_color() == lines["ours"].get_color()
    assert (lines["ours (2 workers)"].get_linestyle(), lines["ours"].get_linestyle()) == ("--", "-")
    assert len({line.get_color() for line in lines.values()}) == 5, "the other systems each a colour of their own"
    # Only the pooled row of each pair in turns: one point, the p99 of all its rounds' requests,
    # set a little apart from the other system's at the same rate so neither hides the other.
    [on], [off] = lines["ours, ledger on"].get_xdata(), lines["ours, ledger off"].get_xdata()
    assert on == pytest.approx(200, rel=0.08)
    assert off == pytest.approx(200, rel=0.08)
    assert on != off
    assert list(lines["ours, ledger on"].get_ydata()) == [pytest.approx(5.0)]  # rounds of 3, 4, 5 ms pooled
    assert list(lines["ours, ledger off"].get_ydata()) == [pytest.approx(6.0)]
    assert ax.get_yscale() == "log", "1.1 ms to 90 ms spans more than tenfold"
    assert ax.get_xscale() == "log"


def test_close_latencies_keep_a_linear_axis_and_an_unanswered_run_leaves_a_gap(
    tmp_path: Path, figures: list[Any]
) -> None:
    rows = [run_row(plan.OURS, 50, 2.0), run_row(plan.OURS, 100, None), run_row(plan.OURS, 200, 3.0)]
    charts.serving_chart(rows, tmp_path / "serving.png")
    [ax] = figures[-1].axes
    [line] = ax.get_lines()
    assert list(line.get_xdata()) == [50, 200]
    assert ax.get_yscale() == "linear"


def test_serving_refuses_rows_it_cannot_draw(tmp_path: Path) -> None:
    rows = serving_rows(tmp_path)
    rows[4] = {k: v for k, v in rows[4].items() if k != "p99_ms"}
    with pytest.raises(ValueError, match=r"serving row 4 lacks \['p99_ms'\]"):
        charts.serving_chart(rows, tmp_path / "broken.png")
    reads = [{"read_path": "direct redis read", "entities": 1, "calls": 500, "p50_ms": 0.1, "p99_ms": 0.3}]
    with pytest.raises(ValueError, match=r"lacks \['system', 'rate_rps', 'workers'\]"):
        charts.serving_chart(reads, tmp_path / "reads.png")
    with pytest.raises(ValueError, match="no serving row with a p99"):
        charts.serving_chart([run_row(plan.OURS, 50, None)], tmp_path / "silent.png")
    assert not list(tmp_path.glob("*.png"))


def test_the_serving_report_shows_its_chart_under_the_table(tmp_path: Path) -> None:
    rows = serving_rows(tmp_path)
    text = report.markdown(rows, 12.0, "1", "ett_forecaster", "ETTh1", chart="serving.png")
    assert "![p99 latency per offered rate, one line per system](serving.png)" in text
    assert text.index("| system |") < text.index("](serving.png)") < text.index("## Targets")
    assert "](serving.png)" not in report.markdown(rows, 12.0, "1", "ett_forecaster", "ETTh1")
