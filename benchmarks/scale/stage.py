"""One stage of the scale benchmark in a process of its own: ``python -m benchmarks.scale.stage NAME``.

The driver (:mod:`benchmarks.scale`) starts this once per stage and series count, so that each
stage's peak memory is its own process's (:func:`own_peak_mb`) and no stage inherits the caches of
another. A stage calls the platform's own step, the function the DAG's task calls, with
the settings of the environment (``MLOPS_*``), and prints one JSON line: what it made.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

STAGES = (
    "generate", "ingest", "validate", "features", "materialize", "training_set", "fit_per_series", "fit_global",
    "global_sample_accuracy", "champion", "batch_forecast", "score", "drift_monitor", "serve",
)  # fmt: skip
# One day of the platform's loop (the daily DAGs' steps): not the retraining's training set and fits,
# nor the benchmark's own generate and champion.
DAY_STAGES = ("ingest", "validate", "features", "materialize", "batch_forecast", "score", "drift_monitor")
# The stages that read or write the model registry (MLflow, in the count's home).
REGISTRY_STAGES = ("champion", "batch_forecast", "drift_monitor")
# The family of the version the forecasting stages forecast with: fitted and backtested in seconds
# at any count, so that the champion stage measures the registry's steps, not a model's fit.
CHAMPION_FAMILY = "naive"


def own_peak_mb() -> float:
    """This process's peak resident memory since it started (``VmHWM``), in MB. Not ``ru_maxrss``: a
    child inherits its parent's peak through ``fork`` and keeps it across ``exec``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # elsewhere than Linux


def training_rows(settings: Any, dataset: Any, day: date, family: str) -> Any:
    """The training set the ``training_set`` stage wrote, as ``family``'s training reads it (a global
    model past ``training.max_rows``: a sample, :mod:`model_training.rows`)."""
    from model_training.rows import training_rows as read

    return read(str(training_set_path(settings, dataset, day)), dataset, family, settings)


def sample_accuracy(settings: Any, dataset: Any, day: date, family: str) -> dict[str, Any]:
    """The backtest of ``family`` trained on the rows its training reads (a sample past
    ``training.max_rows``) and on every row: the same test rows scored, the MAE of each."""
    from model_training import forecasters
    from model_training.backtest import backtest
    from model_training.devices import training_device

    device = training_device(settings)
    out: dict[str, Any] = {"family": family, "max_rows": dataset.training.max_rows}
    every = dataset.model_copy(update={"training": dataset.training.model_copy(update={"max_rows": None})})
    for name, config in (("sample", dataset), ("every_row", every)):
        rows = training_rows(settings, config, day, family)
        result = backtest(rows, dataset, lambda: forecasters.create(family, dataset, device=device))
        out[name] = {"rows": len(rows), "mae": result.mean("model", "mae"), "test_rows": result.folds[0].test_rows}
        del rows
    out["mae_ratio"] = out["sample"]["mae"] / out["every_row"]["mae"]
    return out


def training_set_path(settings: Any, dataset: Any, day: date) -> Path:
    return Path(settings.home) / "scale" / dataset.name / f"ds={day}" / "training_set.parquet"


def digest(model: Any) -> str:
    """sha256 of the files ``model`` saves: equal digests, the same bundle."""
    import hashlib
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        model.save(Path(directory))
        sha = hashlib.sha256()
        for path in sorted(Path(directory).rglob("*")):
            if path.is_file():
                sha.update(path.name.encode())
                sha.update(path.read_bytes())
        return sha.hexdigest()


def run(
    stage: str,
    dataset_path: Path,
    day: date,
    family: str,
    with_digest: bool = False,
    days: int = 730,
    seconds: float = 20.0,
) -> dict[str, Any]:
    """Run ``stage`` of ``dataset_path``'s data up to ``day``; what it made, for the report. ``generate``
    writes the dataset (``daily_<series>.yaml`` and its table, ``days`` of history) first."""
    from core.dataset import DatasetConfig
    from core.settings import get_settings

    if stage == "generate":  # the dataset's table and YAML, named as the driver expects them
        from harness.series import write

        series = int(dataset_path.stem.rsplit("_", 1)[1])
        write(dataset_path.parent, series, "daily", days)
        return {"series": series}
    settings, dataset = get_settings(), DatasetConfig.from_yaml(dataset_path)
    if stage == "ingest":
        from data_pipeline.ingest import ingest

        return {"rows": ingest(dataset, day, settings).rows}
    if stage == "validate":
        from data_pipeline.validation import validate

        return {"expectations": validate(dataset, day, settings).evaluated}
    if stage == "features":
        from feature_store.build import write_offline_source

        return {"rows": write_offline_source(settings, dataset, day).rows}
    if stage == "materialize":
        from core.windows import end_of
        from feature_store.repo import apply_and_materialize

        done = apply_and_materialize(settings, dataset, end_of(day))
        return {"start": done.start.isoformat(), "end": done.end.isoformat()}
    if stage == "training_set":
        from feature_store.training_set import write_training_set

        path = training_set_path(settings, dataset, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        written = write_training_set(settings, dataset, day, str(path))
        return {"rows": written.rows}
    if stage in ("fit_per_series", "fit_global"):
        from model_training.candidates import fit
        from model_training.devices import training_device

        rows = training_rows(settings, dataset, day, family)
        model = fit(rows, dataset, family, training_device(settings))
        fitted = getattr(model, "models", None)
        made = {"rows": len(rows), "family": family, "series_fitted": None if fitted is None else len(fitted)}
        return {**made, "digest": digest(model)} if with_digest else made
    if stage == "global_sample_accuracy":
        return sample_accuracy(settings, dataset, day, family)
    if stage in REGISTRY_STAGES:
        from model_registry import tracking

        tracking.configure(settings)
    if stage == "champion":
        return {"version": promote_champion(settings, dataset, day), "family": CHAMPION_FAMILY}
    if stage == "batch_forecast":
        from model_serving.batch import issue_day

        issued = issue_day(settings, dataset, forecast_date(dataset, day))
        return {"rows": issued.rows, "entities": issued.entities, "data_date": str(issued.data_date)}
    if stage == "score":
        from monitoring.forecast_scoring import score_day

        return {"scored": score_day(settings, dataset, day).scored}
    if stage == "drift_monitor":
        from monitoring.champion_drift import check_champion

        checked = check_champion(settings, dataset, day, day)
        judged = None if checked.drift is None else len(checked.drift.judged)
        return {"state": checked.state, "judged": judged}
    if stage == "serve":
        from benchmarks.scale.serving import serve

        return serve(settings, dataset, day, seconds, Path(settings.home) / "scale" / "serve")
    raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")


def forecast_date(dataset: Any, day: date) -> date:
    """The day whose forecasts ``day``'s data scores: a horizon before it, so that every step's target
    is in the data the score stage reads."""
    import pandas as pd

    issued = dataset.frequency.shift(pd.Timestamp(day, tz="UTC"), -dataset.horizon)
    return date(issued.year, issued.month, issued.day)


def promote_champion(settings: Any, dataset: Any, day: date) -> str:
    """A version of :data:`CHAMPION_FAMILY`, trained on the training set the ``training_set`` stage
    wrote, registered and promoted without gates (the forecasting stages' champion); its number.
    MLflow is configured for ``settings`` already (:data:`REGISTRY_STAGES`)."""
    from model_registry.promotion import promote_version
    from model_registry.registry import register_challenger
    from model_training.train import train

    outcome = train(
        settings, dataset, day, CHAMPION_FAMILY, training_set=str(training_set_path(settings, dataset, day))
    )
    name = settings.model_name(dataset.name)
    version = register_challenger(settings, name, outcome.run_id).version
    promote_version(settings, name, version, f"bench-scale: the {CHAMPION_FAMILY} version the forecasting stages use")
    return str(version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale.stage", description=__doc__)
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--logical-date", type=date.fromisoformat, required=True)
    parser.add_argument("--family", default="auto_ets", help="the model the fit stages fit")
    parser.add_argument("--digest", action="store_true", help="the fit stages: print the fitted bundle's sha256")
    parser.add_argument("--days", type=int, default=730, help="generate: days of history of each series")
    parser.add_argument("--seconds", type=float, default=20.0, help="serve: seconds of each load")
    args = parser.parse_args(argv)
    from core.cli import configure_logging

    configure_logging()
    started = time.perf_counter()
    made = run(args.stage, args.dataset, args.logical_date, args.family, args.digest, args.days, args.seconds)
    seconds = time.perf_counter() - started
    print(json.dumps({"stage": args.stage, "seconds": seconds, "peak_rss_mb": own_peak_mb(), **made}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
