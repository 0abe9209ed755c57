"""``python -m model_training train --dataset CONFIG --logical-date YYYY-MM-DD --model xgboost``.

The same command runs locally and as the training pod's entrypoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from configs.cli import add_common_args, resolve
from model_training.forecasters import FAMILIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    parser.add_argument("command", choices=["train"])
    add_common_args(parser)
    parser.add_argument("--model", default="xgboost", choices=sorted(set(FAMILIES) - {"seasonal_naive"}))
    parser.add_argument("--params", type=json.loads, default=None, help="JSON object of model parameters")
    parser.add_argument("--params-file", type=Path, default=None, help="JSON file of model parameters")
    parser.add_argument("--horizon", type=int, default=None, help="override the dataset's horizon")
    parser.add_argument("--training-set", type=Path, default=None, help="parquet written by an earlier step")
    parser.add_argument("--tag", action="append", default=[], help="key=value tag on the MLflow run")
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    dataset = dataset.with_horizon(args.horizon)
    params = dict(args.params or {})
    if args.params_file is not None:
        params = {**json.loads(args.params_file.read_text()), **params}
    tags = dict(tag.split("=", 1) for tag in args.tag)
    from model_training.train import train

    outcome = train(
        settings,
        dataset,
        logical_date,
        family=args.model,
        params=params or None,
        training_set=args.training_set,
        tags=tags,
    )
    print(f"logged run {outcome.run_id}: {outcome.model_uri}")
    print("backtest MAE per entity (model vs seasonal naive):")
    for entity, value in outcome.model_mae_by_entity.items():
        print(f"  {entity}: {value:.4f} vs {outcome.baseline_mae_by_entity[entity]:.4f}")
    print(f"overall: MAE {outcome.metrics['backtest_mae']:.4f} vs {outcome.metrics['baseline_mae']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
