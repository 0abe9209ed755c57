"""``reports/m4.{json,md,png}``: each model's M4 scores per frequency, beside the published rows."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from benchmarks.m4.data import M4_DIR

ROW_KEYS = ("frequency", "model", "smape", "mase", "owa", "msis", "acd", "fit_s", "predict_s")
WINNER = "118"  # Smyl's hybrid ES-RNN, first overall
PUBLISHED_NAMED = {"sNaive": "sNaive", "Naive2": "Naive2", "Theta": "Theta"}


def _published(file: str) -> list[dict[str, str]]:
    with (M4_DIR / file).open(newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["team"] not in ("", "nan")]


def published_rows(frequency: str) -> list[dict[str, Any]]:
    """The published rows the report sets ours beside: the best submission on this frequency's OWA,
    the competition's winner, seasonal naive, Naive2 and Theta; and the best 95 % interval (MSIS)."""
    points = _published("published_point.csv")

    def point(row: dict[str, str], label: str) -> dict[str, Any]:
        return {
            "published": label,
            "team": row["team"],
            "smape": float(row[f"smape_{frequency}"]),
            "mase": float(row[f"mase_{frequency}"]),
            "owa": float(row[f"owa_{frequency}"]),
        }

    best = min(points, key=lambda r: float(r[f"owa_{frequency}"]))
    rows = [point(best, "best submission (OWA)")]
    rows += [point(r, "winner (overall)") for r in points if r["method"] == WINNER]
    for method, label in PUBLISHED_NAMED.items():
        rows += [point(r, label) for r in points if r["method"] == method]
    intervals = _published("published_intervals_95.csv")
    best_interval = min(intervals, key=lambda r: float(r[f"msis_{frequency}"]))
    rows.append(
        {
            "published": "best 95 % interval (MSIS)",
            "team": best_interval["team"],
            "msis": float(best_interval[f"msis_{frequency}"]),
            "acd": float(best_interval[f"acd_{frequency}"]),
        }
    )
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown(rows: list[dict[str, Any]], series: dict[str, int]) -> str:
    lines = ["# M4 Hourly and Weekly: the platform's peers and baselines against the competition", ""]
    lines += [
        "Scored by M4's rules (`benchmarks/m4/metrics.py`): sMAPE and MASE averaged over the series, OWA "
        "against Naive2 of the same run, MSIS and ACD of the 95 % interval. Times in seconds on this machine.",
        "",
    ]
    for frequency, count in series.items():
        lines += [f"## {frequency.capitalize()} ({count} series)", ""]
        lines += ["| model | sMAPE | MASE | OWA | MSIS | ACD | fit s | predict s |", "|---|" + "---:|" * 7]
        for row in (r for r in rows if r["frequency"] == frequency):
            cells = [row["model"], *(_cell(row[k]) for k in ROW_KEYS[2:])]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Published (all 414 / 359 series):", ""]
        lines += ["| published | team | sMAPE | MASE | OWA | MSIS | ACD |", "|---|---|---:|---:|---:|---:|---:|"]
        for row in published_rows(frequency):
            scores = (_cell(row.get(k)) for k in ("smape", "mase", "owa", "msis", "acd"))
            cells = [row["published"], row["team"], *scores]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> Path:
    """OWA per model, one panel per frequency, the best submission's OWA drawn as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frequencies = sorted({r["frequency"] for r in rows})
    figure, axes = plt.subplots(1, len(frequencies), figsize=(6 * len(frequencies), 4), squeeze=False)
    for ax, frequency in zip(axes[0], frequencies, strict=True):
        mine = [r for r in rows if r["frequency"] == frequency]
        ax.barh([r["model"] for r in mine], [r["owa"] for r in mine])
        best = published_rows(frequency)[0]
        ax.axvline(best["owa"], color="black", linestyle="--", label=f"best submission {best['owa']:.3f}")
        ax.set_title(f"M4 {frequency}: OWA (lower is better)")
        ax.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write(rows: list[dict[str, Any]], series: dict[str, int], out: Path) -> list[Path]:
    """``m4.json`` (the rows and the published ones), ``m4.md`` and ``m4.png`` under ``out``."""
    for index, row in enumerate(rows):
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"row {index} lacks {missing}")
    out.mkdir(parents=True, exist_ok=True)
    document = {"series": series, "rows": rows, "published": {f: published_rows(f) for f in series}}
    paths = [out / "m4.json", out / "m4.md", out / "m4.png"]
    paths[0].write_text(json.dumps(document, indent=2))
    paths[1].write_text(markdown(rows, series))
    chart(rows, paths[2])
    return paths
