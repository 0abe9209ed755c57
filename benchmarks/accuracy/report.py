"""The accuracy benchmark's verdicts (published numbers reproduced, the tuned model against NLinear,
the bands' coverage and width) and its report: ``accuracy.json``, ``accuracy.md`` and, with a
chart, ``accuracy.png``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.accuracy.intervals import IntervalResult
from benchmarks.accuracy.models import Report
from benchmarks.accuracy.protocol import BenchmarkConfig, BenchmarkIntervals


@dataclass
class Verdict:
    check: str
    passed: bool
    detail: str
    target: bool = True  # False: reported for information, not a target of the benchmark


def check_targets(report: Report, config: BenchmarkConfig) -> list[Verdict]:
    """Published MSEs reproduced within tolerance; the best tuned model (chosen on validation) at or
    below NLinear at the tuning horizon. That comparison is a target where NLinear's result is
    published (ours and the paper's must both be matched) and reported for information elsewhere.
    Then the intervals' (:func:`check_intervals`)."""
    results = report.results
    verdicts = []
    tolerance = config.published.tolerance if config.published else 0.0
    for r in results:
        if r.published_mse is None:
            continue
        ratio = r.mse / r.published_mse
        verdicts.append(
            Verdict(
                f"{r.dataset} {r.model} H={r.horizon} within {tolerance:.0%} of published MSE",
                abs(ratio - 1) <= tolerance,
                f"{r.mse:.4f} vs {r.published_mse:.3f} ({ratio - 1:+.1%})",
            )
        )
    if config.tuning is not None:
        h = config.tuning.horizon
        for series in config.series:
            tuned = [r for r in results if r.dataset == series and r.horizon == h and r.model.endswith("+optuna")]
            nlinear = [r for r in results if r.dataset == series and r.horizon == h and r.model == "nlinear"]
            if not tuned or not nlinear:
                continue
            best = min(tuned, key=lambda r: r.validation_mse or float("inf"))
            published = nlinear[0].published_mse
            reference = min(nlinear[0].mse, published) if published else nlinear[0].mse
            verdicts.append(
                Verdict(
                    f"{series} best tuned model at H={h} at or below NLinear's MSE",
                    best.mse <= reference,
                    f"{best.model} {best.mse:.4f} vs NLinear {reference:.4f}",
                    target=published is not None,
                )
            )
    if config.intervals is not None:
        verdicts += check_intervals(report.intervals, config.intervals)
    return verdicts


def check_intervals(rows: list[IntervalResult], spec: BenchmarkIntervals) -> list[Verdict]:
    """Our families' test coverage within ``tolerance`` of each level (the peer's: for information),
    and our base learner's bands no wider than the peer's at equal or better coverage: a narrower band
    that covers less is no better, so the width target needs both."""
    verdicts = []
    peer = spec.mlforecast
    for r in rows:
        verdicts.append(
            Verdict(
                f"{r.dataset} {r.model} H={r.horizon} coverage within {spec.tolerance * 100:g} points of {r.level:.0%}",
                abs(r.coverage - r.level) <= spec.tolerance,
                f"{r.coverage:.3f} ({(r.coverage - r.level) * 100:+.1f} points), width {r.width:.3f}",
                target=peer is None or r.model != peer.model,
            )
        )
    if peer is None:
        return verdicts
    for theirs in (r for r in rows if r.model == peer.model):
        ours = next(
            (
                r
                for r in rows
                if (r.dataset, r.model, r.horizon, r.level)
                == (theirs.dataset, peer.family, theirs.horizon, theirs.level)
            ),
            None,
        )
        if ours is None:
            continue
        verdicts.append(
            Verdict(
                f"{ours.dataset} {ours.model} H={ours.horizon} {ours.level:.0%} band no wider than {peer.model}'s "
                "at equal or better coverage",
                ours.coverage >= theirs.coverage and ours.width <= theirs.width,
                f"width {ours.width:.3f} vs {theirs.width:.3f} ({ours.width / theirs.width - 1:+.1%}), coverage "
                f"{ours.coverage:.3f} vs {theirs.coverage:.3f}, interval score {ours.interval_score:.3f} vs "
                f"{theirs.interval_score:.3f}",
            )
        )
    return verdicts


def write_report(
    report: Report, verdicts: list[Verdict], config: BenchmarkConfig, out_dir: Path, chart: bool = False
) -> Path:
    """``accuracy.json``: the point rows, then the interval rows (each keyed by dataset, model,
    horizon and level); ``accuracy.md``: a table of each, then the targets. With ``chart``, also
    ``accuracy.png`` drawn from the JSON's rows (:func:`benchmarks.charts.accuracy_chart`), shown
    in the markdown under the point table (off by default: tests need no matplotlib figure)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results = report.results
    keys = ["dataset", "model", "horizon", "mse", "mae", "published_mse", "published_mae"]
    rows: list[dict[str, Any]] = [{**{k: asdict(r)[k] for k in keys}, **asdict(r)} for r in results]
    rows += [asdict(r) for r in report.intervals]
    (out_dir / "accuracy.json").write_text(json.dumps(rows, indent=2) + "\n")
    drawn = None
    if chart and results:
        from benchmarks.charts import accuracy_chart

        drawn = accuracy_chart(rows, out_dir / "accuracy.png")

    def cell(value: float | None, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [
        "# Accuracy benchmark",
        "",
        f"Protocol: `{config.dataset.name}`, look-back {config.lookback}, split {config.split.train}/"
        f"{config.split.validation}/{config.split.test} rows, standardised with training statistics; "
        "test MSE and MAE on that scale." + (f" Published: {config.published.source}." if config.published else ""),
        "",
        "| dataset | model | horizon | MSE | MAE | published MSE | published MAE | validation MSE | fit s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.dataset} | {r.model} | {r.horizon} | {cell(r.mse)} | {cell(r.mae)} | {cell(r.published_mse, 3)} | "
            f"{cell(r.published_mae, 3)} | {cell(r.validation_mse)} | {cell(r.fit_seconds, 1)} |"
        )
    if drawn is not None:
        lines += ["", f"![Test MSE and MAE per horizon: ours solid, published dashed]({drawn.name})"]
    if report.intervals and config.intervals is not None:
        spec = config.intervals
        peer = spec.mlforecast
        lines += [
            "",
            "## Prediction intervals",
            "",
            f"Ours: split-conformal half-widths per step from the validation split's errors of the model "
            f"fitted above, on the test split; {report.intervals[0].origins} test windows (every "
            f"{spec.origin_stride}), every step, standardised scale."
            + (
                f" {peer.model}: MLForecast ({peer.strategy}) with the same LightGBM parameters on the "
                f"same {config.lookback} lags, given train + validation, {peer.method} intervals, forecasting "
                "from the same test origins."
                if peer
                else ""
            ),
            "",
            "| dataset | model | horizon | level | coverage | width | interval score | point MSE | calibration "
            "windows | fit s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i in report.intervals:
            lines.append(
                f"| {i.dataset} | {i.model} | {i.horizon} | {i.level:g} | {i.coverage:.3f} | {i.width:.3f} | "
                f"{i.interval_score:.3f} | {i.point_mse:.4f} | {i.calibration_windows} | {cell(i.fit_seconds, 1)} |"
            )
    lines += ["", "## Targets", "", "| check | result | detail |", "|---|---|---|"]
    lines += [
        f"| {v.check} | {('pass' if v.passed else 'FAIL') if v.target else 'info: ' + ('yes' if v.passed else 'no')} "
        f"| {v.detail} |"
        for v in verdicts
    ]
    (out_dir / "accuracy.md").write_text("\n".join(lines) + "\n")
    return out_dir / "accuracy.json"
