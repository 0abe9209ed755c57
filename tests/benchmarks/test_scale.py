"""The scale benchmark: each stage's peak memory is its own process's, the growth exponents are
log-log slopes, and a small run of every stage (and of the Ray comparison) writes the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks.charts import scale_chart
from benchmarks.scale.__main__ import exponents, main, markdown, measure, same_bundles
from benchmarks.scale.stage import DAY_STAGES, STAGES
from core.settings import PROJECT_ROOT


def test_a_stage_is_measured_by_its_own_process_peak_memory(tmp_path: Path) -> None:
    """A stage says its own peak (``VmHWM``); ``wait4``'s would count the driver's memory, which a
    child inherits at ``fork``."""
    report = "import json; from benchmarks.scale.stage import own_peak_mb; "
    report += "print(json.dumps({'peak_rss_mb': own_peak_mb()}))"
    grows = f"b = bytearray(300 * 2**20); {report}"
    ballast = bytearray(400 * 2**20)  # this process, the driver, is large: its children are not
    row = measure([sys.executable, "-c", grows], {"PYTHONPATH": str(PROJECT_ROOT)}, tmp_path / "grows.log")
    assert 300 < row["peak_rss_mb"] < 400
    small = measure([sys.executable, "-c", report], {"PYTHONPATH": str(PROJECT_ROOT)}, tmp_path / "small.log")
    assert small["peak_rss_mb"] < 100
    del ballast  # held until both children ran
    fails = "import sys; print('out of memory', file=sys.stderr); sys.exit(3)"
    with pytest.raises(RuntimeError, match=r"exit code 3 \(log: .*fails.log\): out of memory"):
        measure([sys.executable, "-c", fails], {}, tmp_path / "fails.log")


def test_the_exponent_is_the_slope_between_the_two_largest_counts() -> None:
    rows = [
        {"series": n, "stage": stage, "wall_s": wall}
        for n in (100, 1000, 10000)
        for stage, wall in (("linear", 0.01 * n), ("quadratic", 1e-6 * n**2), ("failed", None if n > 100 else 1.0))
    ]
    slopes = exponents(rows)
    assert slopes["linear"] == pytest.approx(1.0, abs=0.01)
    assert slopes["quadratic"] == pytest.approx(2.0)
    assert slopes["failed"] is None


@pytest.mark.slow
def test_a_small_run_of_every_stage_writes_the_report(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    # One count: the exponents between counts are the test above's; a stage's run is the same at any count.
    args = ["--series", "8", "--days", "120", "--ray-series", "8", "--serve-seconds", "2"]
    args += ["--home", str(tmp_path / "home")]
    assert main([*args, "--out", str(out)]) == 0
    report = json.loads((out / "scale.json").read_text())
    stages = list(STAGES)
    assert [(row["series"], row["stage"]) for row in report["rows"]] == [(8, s) for s in stages]
    for row in report["rows"]:
        assert row["wall_s"] > 0, row
        assert row["peak_rss_mb"] > 50, row
    assert {row["series_fitted"] for row in report["rows"] if row["stage"] == "fit_per_series"} == {8}
    assert set(report["exponents"]) == set(stages) - {"generate", "serve", "global_sample_accuracy"}
    n = 8
    rows = {row["stage"]: row for row in report["rows"] if row["series"] == n}
    issued = rows["batch_forecast"]
    assert 0 < issued["entities"] <= n
    assert issued["rows"] == issued["entities"] * 14, "every entity forecast, a horizon each (daily: 14)"
    assert 0 < rows["score"]["scored"] <= issued["rows"], "the day's data scores the forecasts a horizon before"
    assert 0 < rows["drift_monitor"]["judged"] <= n, "the drift monitor judged the series"
    accuracy = rows["global_sample_accuracy"]  # 8 series are within training.max_rows: the sample is every row
    assert accuracy["sample"] == accuracy["every_row"]
    assert accuracy["sample"]["test_rows"] == 8 * 14
    assert accuracy["mae_ratio"] == 1.0
    served = rows["serve"]
    assert served["entities"] == issued["entities"], "the entities of the newest day: every one in the store"
    for load in ("two_entities", "one_of_all", "batch_100"):
        assert served[load]["errors"] == 0, (load, served[load])
        assert served[load]["requests"] > 0
    day = sum(rows[stage]["wall_s"] for stage in DAY_STAGES)
    assert report["day_wall_s"][str(n)] == pytest.approx(day, abs=0.1), "the day's loop: its stages alone"
    ray = report["ray"]
    assert ray["series"] == 8
    assert ray["same_bundles"], "in-process, one Ray worker and two: the same fitted bundle"
    assert report["ray_speedup"] == pytest.approx(ray["ray_1"]["wall_s"] / ray["ray_2"]["wall_s"], rel=1e-2)
    page = (out / "scale.md").read_text()
    assert "| fit_per_series |" in page
    assert "the three bundles are the same files" in page
    assert "backtested on the same 112 test rows" in page
    assert "| series | two entities | one of all | ratio | batch of 100 | errors |" in page
    assert (out / "scale.png").stat().st_size > 0


def test_a_failed_stage_is_reported_and_the_chart_leaves_it_out(tmp_path: Path) -> None:
    rows = [
        {"series": 10, "stage": "ingest", "wall_s": 1.0, "peak_rss_mb": 10.0},
        {"series": 100, "stage": "ingest", "wall_s": None, "peak_rss_mb": None, "error": "exit code -9 (log: x)"},
    ]
    report = {"rows": rows, "exponents": exponents(rows), "day_wall_s": {"10": 1.0, "100": 0.0}, "ray": None}
    assert "failed: exit code -9" in markdown(report)
    assert scale_chart(rows, tmp_path / "scale.png").stat().st_size > 0
    with pytest.raises(ValueError, match="lacks \\['wall_s'\\]"):
        scale_chart([{"series": 1, "stage": "x"}], tmp_path / "bad.png")


def test_bundles_that_differ_are_reported_as_not_the_same() -> None:
    runs = {"local": {"digest": "a", "wall_s": 3.0}, "ray_1": {"digest": "a", "wall_s": 3.0}}
    assert same_bundles({**runs, "ray_2": {"digest": "a", "wall_s": 2.0}})
    assert not same_bundles({**runs, "ray_2": {"digest": "b", "wall_s": 2.0}})
    ray = {"series": 8, "family": "auto_ets", **runs, "ray_2": {"digest": "b", "wall_s": 2.0}}
    report = {"rows": [], "exponents": {}, "day_wall_s": {}, "ray": {**ray, "same_bundles": False, "speedup": 1.5}}
    assert "the three bundles are **not** the same files" in markdown(report)
