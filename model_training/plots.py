"""Backtest plot: error per horizon step, model against seasonal naive."""

from __future__ import annotations

from pathlib import Path

from model_training.backtest import BacktestResult


def plot_backtest(result: BacktestResult, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
