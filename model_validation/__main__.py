"""``python -m model_validation calibrate-drift --dataset CONFIG --logical-date D``.

How often the drift gate would have fired, at each candidate threshold, on the past windows of the
training window that ends at ``--logical-date`` (read from the offline feature source): the
evidence for a dataset config's ``promotion.drift_threshold``. Prints a table and writes
``reports/drift_calibration_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from configs.cli import add_common_args, resolve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_validation", description=__doc__)
    parser.add_argument("command", choices=["calibrate-drift"])
    add_common_args(parser)
    parser.add_argument("--thresholds", default="0.25,0.5,0.75,1,1.25,1.5,2", help="comma-separated candidates")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (default: reports/...)")
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    import pandas as pd

    from feature_store.features import EVENT_TIMESTAMP, offline_source_path
    from model_validation.drift import calibrate_threshold

    thresholds = [float(t) for t in args.thresholds.split(",")]
    features = pd.read_parquet(offline_source_path(settings, dataset))
    end = pd.Timestamp(logical_date, tz="UTC") + pd.Timedelta(days=1)
    window = dataset.training.window or (end - features[EVENT_TIMESTAMP].min())
    stamps = features[EVENT_TIMESTAMP]
    reference = features[(stamps < end - dataset.promotion.holdout) & (stamps >= end - window)]
    rates = calibrate_threshold(reference, dataset, thresholds)
    promotion = dataset.promotion
    hours = promotion.drift_window.total_seconds() / 3600
    print(
        f"{dataset.name}: share of past {hours:g}-hour windows the gate would block (share of drifted features "
        f"> {promotion.max_drift_share}); configured threshold {promotion.drift_threshold}"
    )
    print("threshold  " + "  ".join(f"{entity:>10}" for entity in rates))
    for t in thresholds:
        print(f"{t:>9}  " + "  ".join(f"{rates[e][t]:>10.2f}" for e in rates))
    out = args.out or Path("reports") / f"drift_calibration_{dataset.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "dataset": dataset.name,
        "logical_date": logical_date.isoformat(),
        "drift_window_hours": promotion.drift_window.total_seconds() / 3600,
        "max_drift_share": promotion.max_drift_share,
        "configured_threshold": promotion.drift_threshold,
        "blocked_share": {e: {str(t): v for t, v in r.items()} for e, r in rates.items()},
    }
    out.write_text(json.dumps(payload, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
