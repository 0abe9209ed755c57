"""The training CLI; the same commands run locally and as training pods' entrypoint.

``train``: backtest, fit and log one MLflow run with the bundle.
``tune``: one Optuna worker on a shared study (start several, on any machines, with the same study).
``best-params``: the study's best parameters as JSON for ``train --params-file``.
``candidate``: one candidate of the selection family evaluated on the training set (its backtests
and its fit), written for ``train --model selection --candidates``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core.cli import add_common_args, resolve
from model_training.forecasters import FAMILIES, TRAINABLE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_training", description=__doc__)
    parser.add_argument("command", choices=["train", "tune", "best-params", "candidate"])
    add_common_args(parser)
    parser.add_argument("--model", default="xgboost", choices=TRAINABLE)
    parser.add_argument("--params", type=json.loads, default=None, help="JSON object of model parameters")
    parser.add_argument(
        "--params-file", default=None, help="JSON file of model parameters (a local path or an s3:// object)"
    )
    parser.add_argument("--horizon", type=int, default=None, help="override the dataset's horizon")
    parser.add_argument(
        "--training-set", default=None, help="parquet written by an earlier step (a local path or an s3:// object)"
    )
    parser.add_argument(
        "--labelled",
        default=None,
        help="train: every labelled row (parquet, the holdout included), on which the same model is fitted again "
        "and logged beside the evaluated one as model 'refit' (served once the gates pass)",
    )
    parser.add_argument("--tag", action="append", default=[], help="key=value tag on the MLflow run")
    parser.add_argument("--study", default=None, help="Optuna study name (tune, best-params; train logs it)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study should hold")
    parser.add_argument("--worker", type=int, default=0, help="tune: this worker's index (seeds its sampler)")
    parser.add_argument("--no-pruning", action="store_true", help="tune: run every fold of every trial")
    parser.add_argument(
        "--out",
        default=None,
        help="best-params: the JSON file to write; candidate: the folder (prefix) its evaluation goes under "
        "(a local path or an s3:// prefix)",
    )
    parser.add_argument(
        "--candidate",
        default=None,
        choices=sorted(set(FAMILIES) - {"selection"}),
        help="candidate: the family to evaluate",
    )
    parser.add_argument(
        "--candidates",
        default=None,
        help="train --model selection: the folder (prefix) of the candidates' evaluations; without it they "
        "are evaluated in the run",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings, dataset, logical_date = resolve(args)
    dataset = dataset.with_horizon(args.horizon)
    if args.command in ("tune", "best-params") and not args.study:
        parser.error(f"{args.command} needs --study")
    if args.command == "tune":
        from model_training.rows import training_rows
        from model_training.tuning import tune_worker

        if args.training_set is None:
            parser.error("tune needs --training-set")
        frame = training_rows(args.training_set, dataset, args.model, settings)
        ran = tune_worker(
            settings, dataset, frame, args.model, args.trials, args.study, args.worker, pruning=not args.no_pruning
        )
        print(f"worker {args.worker} ran {ran} trials of study {args.study}")
        return 0
    if args.command == "best-params":
        from core.objects import read_object
        from model_training.tuning import write_best_params

        if args.out is None:
            parser.error("best-params needs --out")
        out = write_best_params(settings, dataset, args.model, args.study, args.out, args.trials)
        print(read_object(out, settings).decode())
        return 0

    if args.command == "candidate":
        return _candidate(parser, args, settings, dataset)

    params = dict(args.params or {})
    if args.params_file is not None:
        from core.objects import read_object

        params = {**json.loads(read_object(args.params_file, settings)), **params}
    tags = dict(tag.split("=", 1) for tag in args.tag)
    from model_registry.tracking import configure
    from model_training.train import train

    configure(settings)

    outcome = train(
        settings,
        dataset,
        logical_date,
        family=args.model,
        params=params or None,
        training_set=args.training_set,
        tags=tags,
        study=args.study,
        candidates=args.candidates,
        labelled=args.labelled,
    )
    print(f"logged run {outcome.run_id}: {outcome.model_uri}")
    print("backtest MAE per entity (model vs seasonal naive):")
    for entity, value in outcome.model_mae_by_entity.items():
        print(f"  {entity}: {value:.4f} vs {outcome.baseline_mae_by_entity[entity]:.4f}")
    print(f"overall: MAE {outcome.metrics['backtest_mae']:.4f} vs {outcome.metrics['baseline_mae']:.4f}")
    return 0


def _candidate(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any, dataset: Any) -> int:
    from core.objects import read_parquet
    from model_training import candidates
    from model_training.devices import training_device

    if args.candidate is None or args.training_set is None or args.out is None:
        parser.error("candidate needs --candidate, --training-set and --out")
    # Every row, whatever the family: the selection scores every candidate on the same test rows.
    frame = read_parquet(args.training_set, settings)
    evaluation = candidates.evaluate(frame, dataset, args.candidate, training_device(settings))
    written = candidates.save(evaluation, candidates.location(args.out, args.candidate), settings)
    print(f"evaluated {args.candidate} on {len(frame)} rows in {evaluation.fit_seconds:.1f}s: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
