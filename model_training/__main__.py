"""``python -m model_training train --dataset CONFIG --logical-date YYYY-MM-DD --model xgboost``.

The same command runs locally and as the training pod's entrypoint.
"""

from __future__ import annotations

import argparse
import json
import sys

from configs.cli import add_common_args, resolve
from model_training.forecasters import FAMILIES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    parser.add_argument("command", choices=["train"])
    add_common_args(parser)
    parser.add_argument("--model", default="xgboost", choices=sorted(set(FAMILIES) - {"seasonal_naive"}))
    parser.add_argument("--params", type=json.loads, default=None, help="JSON object of model parameters")
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    from model_training.train import train

    outcome = train(settings, dataset, logical_date, family=args.model, params=args.params)
    print(f"registered {outcome.model_name} version {outcome.version} (run {outcome.run_id})")
    print("backtest MAE per entity (model vs seasonal naive):")
    for entity, value in outcome.model_mae_by_entity.items():
        print(f"  {entity}: {value:.4f} vs {outcome.baseline_mae_by_entity[entity]:.4f}")
    print(f"overall: MAE {outcome.metrics['backtest_mae']:.4f} vs {outcome.metrics['baseline_mae']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
