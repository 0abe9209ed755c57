"""Charts beside the benchmarks' JSON: the same rows, drawn, so a change shows at a glance.

* :func:`accuracy_chart`: ``accuracy.png``, test MSE and MAE per horizon, one panel pair per series,
  ours solid against the published numbers dashed (:mod:`benchmarks.accuracy`);
* :func:`serving_chart`: ``serving.png``, p99 latency per offered rate, one line per system
  (:mod:`benchmarks.serving`);
* :func:`scale_chart`: ``scale.png``, each stage's wall time against the number of series, log-log
  (:mod:`benchmarks.scale`).

Both take exactly the rows their benchmark writes to JSON (so a saved report can be drawn again) and
refuse rows without the keys they draw from: a misspelt or missing key would otherwise give a chart
with no lines, which reads as "nothing measured" rather than as the error it is. matplotlib is
imported inside the functions, as in :mod:`model_training.plots`, so importing the benchmarks costs
nothing until a chart is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# The keys each chart reads; every row it draws must have them (None is allowed where noted).
ACCURACY_KEYS = ("dataset", "model", "horizon", "mse", "mae", "published_mse", "published_mae")  # published: or None
SERVING_KEYS = ("system", "rate_rps", "p99_ms", "workers")  # p99_ms: None when nothing was answered
SCALE_KEYS = ("series", "stage", "wall_s")  # wall_s: None for a stage that failed (not drawn)
POOLED_ROUND = "all"  # serving rows of runs in turns: each round's row, then one pooling them all (drawn)
LOG_SPREAD = 10.0  # a log axis once the largest value is this many times the smallest
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")


def _check_keys(rows: Sequence[Mapping[str, Any]], keys: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the first row that lacks a key the chart reads."""
    for index, row in enumerate(rows):
        missing = [key for key in keys if key not in row]
        if missing:
            raise ValueError(f"{what} row {index} lacks {missing} (has {sorted(row)}): not a row this chart draws")


def _log_if_spread(ax: Axes, values: Iterable[float], axis: str = "y") -> None:
    """A log scale when the values span more than :data:`LOG_SPREAD`, so the small ones stay readable."""
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_SPREAD:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def _colours(count: int) -> list[Any]:
    """tab10's distinct colours, repeating after ten (the markers keep the repeats apart)."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return [palette(i % palette.N) for i in range(count)]


def _save(fig: Any, path: Path) -> Path:
    """Save with the legends outside the axes included, and free the figure."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def accuracy_chart(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Test MSE and MAE per horizon from the rows of ``accuracy.json``: one row of two panels per
    series (dataset), one solid line per model, and dashed in the same colour the published numbers
    where the row carries them, so a model drifting from the paper stands out.

    The point rows are drawn; interval rows (those with a ``level``) are skipped. Raises
    ``ValueError`` when a point row lacks a key of :data:`ACCURACY_KEYS` or there is no point row.
    """
    points = [row for row in rows if "level" not in row]
    _check_keys(points, ACCURACY_KEYS, "accuracy")
    if not points:
        raise ValueError("no point rows (dataset, model, horizon, mse, ...) to chart")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(str(row["dataset"]) for row in points))
    models = list(dict.fromkeys(str(row["model"]) for row in points))
    colour = dict(zip(models, _colours(len(models)), strict=True))
    marker = {model: MARKERS[i % len(MARKERS)] for i, model in enumerate(models)}
    fig, axes = plt.subplots(len(datasets), 2, figsize=(12, 3.8 * len(datasets)), squeeze=False)
    legend: dict[str, Any] = {}
    for dataset, panels in zip(datasets, axes, strict=True):
        mine = [row for row in points if str(row["dataset"]) == dataset]
        horizons = sorted({int(row["horizon"]) for row in mine})
        for ax, metric in zip(panels, ("mse", "mae"), strict=True):
            drawn: list[float] = []
            for model in models:
                series = sorted((r for r in mine if str(r["model"]) == model), key=lambda r: int(r["horizon"]))
                if not series:
                    continue
                x = [int(r["horizon"]) for r in series]
                ours = [float(r[metric]) for r in series]
                (line,) = ax.plot(x, ours, color=colour[model], marker=marker[model], lw=1.6, label=model)
                legend.setdefault(model, line)
                drawn += ours
                published = [
                    (h, float(r[f"published_{metric}"]))
                    for h, r in zip(x, series, strict=True)
                    if r[f"published_{metric}"] is not None
                ]
                if published:
                    label = f"{model} (published)"
                    (line,) = ax.plot(
                        [h for h, _ in published],
                        [v for _, v in published],
                        color=colour[model],
                        marker="x",
                        ls="--",
                        lw=1.2,
                        label=label,
                    )
                    legend.setdefault(label, line)
                    drawn += [v for _, v in published]
            _log_if_spread(ax, drawn)
            ax.set_xticks(horizons)
            ax.set_xlabel("horizon (steps)")
            ax.set_ylabel(f"test {metric.upper()} (standardised)")
            ax.set_title(f"{dataset}: {metric.upper()} per horizon")
            ax.grid(alpha=0.3)
    fig.suptitle("Accuracy per horizon: ours solid, published dashed")
    fig.tight_layout()
    fig.legend(legend.values(), legend.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.97), fontsize=9)
    return _save(fig, path)


def _system_label(system: str, workers: int) -> str:
    """The part of a system's name before its colon (the names carry a description after it)."""
    label = system.split(":")[0].strip()
    return label if workers == 1 else f"{label} ({workers} workers)"


def _dodge(groups: Mapping[tuple[str, int], list[tuple[float, float]]]) -> dict[tuple[str, int], float]:
    """Factors that set single-point systems at the same rate side by side (the pairs in turns all
    run at one rate, with p99s a few percent apart): spread over about +-8% of the rate, on the
    log axis an even gap, still plainly at its tick."""
    alone: dict[float, list[tuple[str, int]]] = {}
    for key, points in groups.items():
        if len(points) == 1:
            alone.setdefault(points[0][0], []).append(key)
    factors = {}
    for keys in alone.values():
        for i, key in enumerate(keys):
            factors[key] = 1.08 ** (2 * i / (len(keys) - 1) - 1) if len(keys) > 1 else 1.0
    return factors


def serving_chart(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """p99 latency per offered rate from the rows of ``serving.json``: one line per system (and
    worker count: the same colour, dashed), the rate on a log axis, the latency on one too when the
    systems differ tenfold.

    Systems loaded in turns write a row per round and one pooling all rounds (``round`` ``"all"``):
    only the pooled row is drawn, the figure the report decides on. Those single points at one rate
    are set slightly apart (:func:`_dodge`), or they would hide each other. A run that answered
    nothing (``p99_ms`` None) leaves a gap. Raises ``ValueError`` when a row lacks a key of
    :data:`SERVING_KEYS` or no row has a latency to draw.
    """
    _check_keys(rows, SERVING_KEYS, "serving")
    drawn_rows = [row for row in rows if row.get("round", POOLED_ROUND) == POOLED_ROUND]
    if not any(row["p99_ms"] is not None for row in drawn_rows):
        raise ValueError("no serving row with a p99 latency to chart")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    groups: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for row in drawn_rows:
        points = groups.setdefault((str(row["system"]), int(row["workers"])), [])
        if row["p99_ms"] is not None:
            points.append((float(row["rate_rps"]), float(row["p99_ms"])))
    groups = {key: sorted(points) for key, points in groups.items() if points}
    systems = list(dict.fromkeys(system for system, _ in groups))
    colour = dict(zip(systems, _colours(len(systems)), strict=True))  # one per system, whatever its workers
    dodge = _dodge(groups)
    fig, ax = plt.subplots(figsize=(9, 5))
    for index, (key, points) in enumerate(groups.items()):
        system, workers = key
        ax.plot(
            [rate * dodge.get(key, 1.0) for rate, _ in points],
            [p99 for _, p99 in points],
            color=colour[system],
            marker=MARKERS[index % len(MARKERS)],
            ls="-" if workers == 1 else "--",
            lw=1.6,
            label=_system_label(system, workers),
        )
    rates = sorted({rate for points in groups.values() for rate, _ in points})
    if len(rates) > 1:
        ax.set_xscale("log")
    ax.set_xticks(rates)
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    _log_if_spread(ax, [p99 for points in groups.values() for _, p99 in points])
    ax.set_xlabel("offered rate (requests per second)")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("Serving latency: p99 per offered rate")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def scale_chart(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """``scale.png``: each stage's wall time against the number of series, log-log, one line per
    stage, and a dotted line of slope 1 (linear growth) from the first stage's first point."""
    import matplotlib.pyplot as plt

    _check_keys(rows, SCALE_KEYS, "scale")
    stages = list(dict.fromkeys(str(row["stage"]) for row in rows))
    fig, ax = plt.subplots(figsize=(8, 5))
    for stage, colour, marker in zip(stages, _colours(len(stages)), MARKERS * 3, strict=False):
        points = sorted((row["series"], row["wall_s"]) for row in rows if row["stage"] == stage and row["wall_s"])
        if points:
            ax.plot(*zip(*points, strict=True), marker=marker, color=colour, label=stage)
    measured = sorted((row["series"], row["wall_s"]) for row in rows if row["wall_s"])
    if measured:
        n0, t0 = measured[0]
        counts = sorted({n for n, _ in measured})
        ax.plot(counts, [t0 * n / n0 for n in counts], ":", color="grey", label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("series")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Each stage's wall time as the series grow")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return _save(fig, path)
