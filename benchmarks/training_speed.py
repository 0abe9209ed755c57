"""Training speed benchmark: wall time and throughput per family, and what pruning saves in tuning.

``python -m benchmarks.training_speed`` writes ``reports/training_speed.json`` and a markdown table. The
rows are the platform's own training set for the dataset (features and labels built by the same
functions the pipeline uses, over the config's training window), on whatever device ``auto`` picks.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from core.columns import EVENT_TIMESTAMP, label_names
from core.dataset import DatasetConfig
from core.progress import logging_beside_progress, progress
from core.settings import Settings
from feature_store.features import build_features
from feature_store.training_set import build_labels, training_window

log = logging.getLogger(__name__)


def training_rows(settings: Settings, dataset: DatasetConfig) -> pd.DataFrame:
    from data_pipeline.ingest import load_source

    raw = load_source(dataset, settings)
    frame = build_labels(raw, dataset).merge(build_features(raw, dataset), on=[dataset.entity_column, EVENT_TIMESTAMP])
    return training_window(frame, dataset)


def family_speed(dataset: DatasetConfig, frame: pd.DataFrame, family: str, device: Any) -> dict[str, Any]:
    from model_training.forecasters import create

    targets = frame[label_names(dataset)].to_numpy(dtype="float64")
    started = time.perf_counter()
    model = create(family, dataset, device=device).fit(frame, targets)
    fit = time.perf_counter() - started
    started = time.perf_counter()
    model.predict(frame)
    predict = time.perf_counter() - started
    return {
        "family": family,
        "device": device.kind,
        "rows": len(frame),
        "fit_seconds": round(fit, 2),
        "fit_rows_per_second": round(len(frame) / fit),
        "predict_rows_per_second": round(len(frame) / predict),
    }


def tuning_speed(
    settings: Settings, dataset: DatasetConfig, frame: pd.DataFrame, family: str, trials: int, pruning: bool
) -> dict[str, Any]:
    import optuna

    from model_training.tuning import tune_worker

    name = f"speed-{family}-{'pruned' if pruning else 'full'}-{time.time_ns()}"
    started = time.perf_counter()
    tune_worker(settings, dataset, frame, family, trials, name, pruning=pruning)
    seconds = time.perf_counter() - started
    study = optuna.load_study(study_name=name, storage=settings.study_storage)
    states = [t.state for t in study.trials]
    return {
        "family": family,
        "trials": trials,
        "pruning": pruning,
        "seconds": round(seconds, 1),
        "pruned": sum(s == optuna.trial.TrialState.PRUNED for s in states),
        "best_mae": round(study.best_value, 4),
        "rows": len(frame),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.training_speed", description=__doc__)
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--families", nargs="*", default=None, help="default: every trainable family")
    parser.add_argument("--tuning-family", default="xgboost")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument(
        "--tuning-window-days", type=int, default=60, help="tuning runs on the newest days of the window"
    )
    parser.add_argument("--out", type=Path, default=Path("reports"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from model_training.devices import select
    from model_training.forecasters import TRAINABLE

    settings = Settings()
    dataset = DatasetConfig.from_yaml(args.dataset or settings.dataset_config)
    frame = training_rows(settings, dataset)
    device = select(settings.training_device)
    families = args.families or TRAINABLE
    with logging_beside_progress(), progress(families, desc="fit speed", unit="family") as bar:
        fits = [family_speed(dataset, frame, family, device) for family in bar]
    newest = frame[frame[EVENT_TIMESTAMP] > frame[EVENT_TIMESTAMP].max() - pd.Timedelta(days=args.tuning_window_days)]
    with logging_beside_progress():  # each tuning run draws Optuna's bar (model_training.tuning)
        tuning = [
            tuning_speed(settings, dataset, newest, args.tuning_family, args.trials, pruning)
            for pruning in (False, True)
        ]
    saving = 1 - tuning[1]["seconds"] / tuning[0]["seconds"]
    report = {
        "machine": {"processor": platform.processor() or platform.machine(), "device": device.kind},
        "dataset": dataset.name,
        "horizon": dataset.horizon,
        "fit": fits,
        "tuning": tuning,
        "pruning_saving": round(saving, 3),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Training speed",
        "",
        f"Dataset `{dataset.name}`, horizon {dataset.horizon}, device `{device.kind}`.",
        "",
        "| family | rows | fit s | fit rows/s | predict rows/s |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {f['family']} | {f['rows']} | {f['fit_seconds']} | {f['fit_rows_per_second']} | "
            f"{f['predict_rows_per_second']} |"
            for f in fits
        ],
        "",
        f"Tuning `{args.tuning_family}`, {args.trials} trials, {len(newest)} rows "
        f"(newest {args.tuning_window_days} days), {dataset.training.backtest.folds}-fold backtest per trial:",
        "",
        "| pruning | seconds | pruned trials | best MAE |",
        "|---|---:|---:|---:|",
        *[
            f"| {'fold median' if t['pruning'] else 'off'} | {t['seconds']} | {t['pruned']} | {t['best_mae']} |"
            for t in tuning
        ],
        "",
        f"Pruning saved {saving:.0%} of the tuning wall time.",
    ]
    (args.out / "training_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
