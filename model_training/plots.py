"""Training plots: the backtest's error per horizon step against seasonal naive, and the final
model's forecast with its intervals against what happened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from core.columns import EVENT_TIMESTAMP, label_names, lag_name
from core.dataset import DatasetConfig
from model_bundle.intervals import BandSource
from model_training.backtest import BacktestResult


def plot_backtest(result: BacktestResult, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = np.mean([f.model_by_step["mae"] for f in result.folds], axis=0)
    naive = np.mean([f.baseline_by_step["mae"] for f in result.folds], axis=0)
    steps = np.arange(1, len(model) + 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(steps, model, marker="o", label="model")
    ax.plot(steps, naive, marker="s", label="seasonal naive")
    ax.set_xlabel("horizon step")
    ax.set_ylabel("MAE (mean over folds)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_forecast(
    frame: pd.DataFrame, dataset: DatasetConfig, point: np.ndarray, calibration: BandSource, path: Path, title: str
) -> Path:
    """Each entity's recent history, the forecast from its newest row with the bands of every level,
    and what then happened (the row's labels): one panel per entity (at most six)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entity, current = dataset.entity_column, lag_name(dataset.target, 0)
    newest = frame.groupby(entity, sort=True).tail(1)
    entities = [str(e) for e in newest[entity]][:6]
    bands = calibration.bands(point, [str(e) for e in newest[entity]], newest)
    steps = range(1, dataset.horizon + 1)
    fig, axes = plt.subplots(len(entities), 1, figsize=(9, 3 * len(entities)), squeeze=False)
    for row, (name, ax) in enumerate(zip(entities, axes[:, 0], strict=False)):
        history = frame[frame[entity].astype(str) == name].tail(4 * dataset.horizon)
        origin = history[EVENT_TIMESTAMP].iloc[-1]
        times = dataset.frequency.ahead(origin, len(steps))
        ax.plot(history[EVENT_TIMESTAMP], history[current], color="black", lw=1, label="history")
        for level in sorted(bands, reverse=True):
            lower, upper = bands[level]
            ax.fill_between(times, lower[row], upper[row], alpha=0.25, label=f"{level:.0%} interval")
        ax.plot(times, point[row], color="tab:blue", marker=".", label="forecast")
        actual = newest[label_names(dataset)].to_numpy(dtype=np.float64)[row]
        ax.plot(times, actual, color="tab:red", ls="--", label="actual")
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_leaderboard(leaderboard: pd.DataFrame, path: Path, title: str) -> Path:
    """A selection's candidates by backtest MASE (mean over series; 1 is the seasonal-naive error
    in-sample), each bar labelled with the number of series on which it is best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    board = leaderboard.iloc[::-1]  # best on top
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(board) + 1.5))
    bars = ax.barh(board["candidate"], board["mase"], color="tab:blue")
    for bar, best in zip(bars, board["series_best"], strict=True):
        ax.annotate(
            f" best on {best} series", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=8
        )
    ax.set_xlabel("backtest MASE (mean over series)")
    ax.set_title(f"{title}: candidates")
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, float(board["mase"].max()) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
