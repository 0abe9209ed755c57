"""``python -m model_validation {promote,calibrate-drift} --dataset CONFIG --logical-date D``.

promote: the challenger (or ``--version``) becomes the champion if it passes both gates of a
retraining run: it beats the champion and seasonal naive on the holdout of ``--logical-date``'s
training window (the champion/challenger gate), and its training rows represent the newest window up
to that date (the drift gate). ``--force --reason WHY`` overrides the drift gate only, recorded on the
version as in the retraining form; nothing overrides a model that loses to the champion.

calibrate-drift: how often the drift gate would have fired, at each candidate threshold, on the past
windows of the training window that ends at ``--logical-date`` (read from the offline feature
source): the evidence for a dataset config's ``promotion.drift_threshold``. Prints a table and
writes ``reports/drift_calibration_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from core.cli import add_common_args, resolve
from core.dataset import DatasetConfig
from core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_validation", description=__doc__)
    parser.add_argument("command", choices=["promote", "calibrate-drift"])
    add_common_args(parser)
    parser.add_argument("--version", default=None, help="promote: model version (default: the challenger)")
    parser.add_argument("--reason", default="", help="promote: why, recorded on the version (required with --force)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="promote: override a blocking drift gate (recorded as an override with --reason); never a worse model",
    )
    parser.add_argument(
        "--thresholds", default="0.25,0.5,0.75,1,1.25,1.5,2", help="calibrate-drift: comma-separated candidates"
    )
    parser.add_argument("--out", type=Path, default=None, help="calibrate-drift: JSON report (default: reports/...)")
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    if args.command == "promote":
        if args.force and not args.reason.strip():
            parser.error("--force overrides the drift gate and needs --reason")
        return promote(settings, dataset, logical_date, args.version, args.reason, args.force)
    import pandas as pd

    from core.columns import EVENT_TIMESTAMP
    from feature_store.features import read_feature_table
    from model_validation.drift import calibrate_threshold

    thresholds = [float(t) for t in args.thresholds.split(",")]
    features = read_feature_table(settings, dataset)
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


def promote(
    settings: Settings, dataset: DatasetConfig, logical_date: date, version: str | None, note: str, force: bool = False
) -> int:
    """Both gates on the date's windows, then the alias move; 3 when a gate says no.

    The decision is recorded on the version as a retraining run records it (each gate's tags, then
    ``gate_decision``), so the registry tells how every champion got there."""
    from model_registry.tracking import CHALLENGER, client, configure
    from model_validation.champion import evaluate_challenger, holdout_of
    from model_validation.decision import explain_skip, promote_served, promotion_allowed, record_decision
    from model_validation.drift import gate_version

    configure(settings)
    model_name = settings.model_name(dataset.name)
    version = version or str(client(settings).get_model_version_by_alias(model_name, CHALLENGER).version)
    decision = evaluate_challenger(settings, dataset, model_name, version, holdout_of(settings, dataset, logical_date))
    out_dir = settings.artifacts / dataset.name / "promote" / f"v{version}-{logical_date}"
    drift = gate_version(settings, dataset, version, logical_date, None, out_dir, force, note)
    if not promotion_allowed(decision, drift):
        reason = explain_skip(decision, drift)
        record_decision(settings, model_name, version, False, reason)
        print(f"{model_name} v{version} NOT promoted: {reason}")
        return 3
    from model_registry.outcomes import RegisteredVersion
    from model_registry.registry import register_refit

    run_id = str(client(settings).get_model_version(model_name, version).run_id)
    served = register_refit(settings, model_name, RegisteredVersion(name=model_name, version=version, run_id=run_id))
    reason = promote_served(settings, model_name, version, served.version, decision, drift, "" if force else note)
    print(f"{model_name} v{served.version} promoted to champion: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
