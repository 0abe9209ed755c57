"""``python -m model_registry {register,rollback,champion} --dataset CONFIG``.

register: the training run (``--run-id``, or the newest run tagged ``--tag key=value``) becomes a
new version with alias ``challenger``. rollback: the champion alias moves back to ``previous`` (or
``--version``). champion: which version serves (``--plot PATH``: and a copy of its training run's
forecast plot, history, forecast and bands); with none, exits 3 and says why the newest version
was not promoted and what to do next. Promotion runs the gates first, so it is
``python -m model_validation promote``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from core.cli import add_common_args, resolve
from core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model_registry", description=__doc__)
    parser.add_argument("command", choices=["register", "rollback", "champion"])
    add_common_args(parser)
    parser.add_argument("--run-id", default=None, help="register: the training run")
    parser.add_argument("--tag", default=None, help="register: key=value of the training run to find")
    parser.add_argument("--version", default=None, help="rollback: target version (default: the previous champion)")
    parser.add_argument("--reason", default="", help="rollback: why, recorded on the version (required)")
    parser.add_argument(
        "--plot", type=Path, default=None, help="champion: copy its run's forecast plot (PNG) to this path"
    )
    args = parser.parse_args(argv)
    settings, dataset, _ = resolve(args)
    model_name = settings.model_name(dataset.name)
    from model_registry import promotion, registry
    from model_registry.tracking import configure

    configure(settings)
    if args.command == "register":
        run_id = args.run_id
        if run_id is None:
            if not args.tag or "=" not in args.tag:
                parser.error("register needs --run-id or --tag key=value")
            key, value = args.tag.split("=", 1)
            run_id = registry.find_run(settings, key, value)
        registered = registry.register_challenger(settings, model_name, run_id)
        print(f"{model_name} version {registered.version} is the challenger (run {run_id})")
        return 0

    if args.command == "champion":
        return champion(settings, model_name, args.plot, args.dataset)

    if not args.reason.strip():
        parser.error("rollback needs --reason")
    try:
        move = promotion.rollback(settings, model_name, args.reason, args.version)
    except promotion.RollbackError as exc:
        print(f"nothing rolled back: {exc}", file=sys.stderr)
        return 4
    print(json.dumps(move.as_dict()))
    return 0


def next_step(tags: dict[str, str], config: str) -> str:
    """What to do about a version the gates stopped, from its gate tags: the champion/challenger gate
    cannot be overridden (a worse model stays out), the drift gate can, with a reason on record."""
    date = tags.get("logical_date") or "YYYY-MM-DD"
    if tags.get("gate_champion_challenger") == "failed":
        return (
            "it lost on the holdout, which nothing overrides: retrain with another family (model_family "
            "lightgbm, nlinear or dlinear), tuning (n_trials above 0) or a longer training window "
            f"(training.window in {config})"
        )
    if tags.get("gate_drift") == "blocked":
        return (
            "only the drift gate blocked it; to promote it anyway, with the reason on record: python -m "
            f"model_validation promote --dataset {config} --logical-date {date} --force --reason WHY "
            "(or retrain with force_promote and a reason)"
        )
    return f"run the gates on it: python -m model_validation promote --dataset {config} --logical-date {date}"


def gate_lines(version: str, tags: dict[str, str]) -> list[str]:
    """What each gate said of a promoted version, from its tags; a drift gate that gave no verdict
    (too few rows in its windows) is a note of its own, so that a chain's output says so rather than
    let it pass silently."""
    lines = [
        f"  champion/challenger gate: {tags.get('gate_champion_challenger', 'not run')}"
        f" ({tags.get('gate_champion_challenger_reason', 'no reason recorded')})",
        f"  drift gate: {tags.get('gate_drift', 'not run')} ({tags.get('gate_drift_reason', 'no reason recorded')})",
    ]
    if tags.get("gate_drift") == "not_enough_data":
        lines.append(
            f"  note: the drift gate gave no verdict on v{version} (too few rows per series in its windows: "
            "promotion.drift_window, promotion.min_drift_rows); it was promoted on the holdout alone"
        )
    return lines


def leaderboard_lines(board_csv: str, choice: dict[str, object]) -> list[str]:
    """A selection champion's leaderboard (its run's ``leaderboard.csv``) as the lines a terminal shows,
    best first, each candidate with its backtest MASE and the series that forecast with it, and a
    note of how many series have a choice of their own (``choice.json``)."""
    import csv

    series = choice.get("series", {})
    assert isinstance(series, dict)
    answering: dict[str, int] = {}
    for names in series.values():
        for name in names:
            answering[name] = answering.get(name, 0) + 1
    lines = ["  candidates (backtest MASE, mean over series; the series each one forecasts):"]
    for row in csv.DictReader(board_csv.splitlines()):
        name = row["candidate"]
        mase, best, own = float(row["mase"]), row["series_best"], answering.get(name, 0)
        lines.append(f"    {name:<24} {mase:8.4f}  best on {best:>5}  forecasts {own:>5}")
    lines.append(f"  {len(series)} series have a choice of their own; any other gets {default_text(choice)}")
    return lines


def default_text(choice: dict[str, object]) -> str:
    """What a series without a choice of its own forecasts with: ``['naive']``, or for a combination
    its candidates and how they combine (a weighted one with each candidate's weight)."""
    default, combine, weights = choice.get("default"), choice.get("combine"), choice.get("default_weights")
    if not isinstance(default, list) or len(default) < 2:
        return str(default)
    if combine == "weighted" and isinstance(weights, list) and len(weights) == len(default):
        return " + ".join(f"{name} x {weight:.2f}" for name, weight in zip(default, weights, strict=True))
    return f"the {combine or 'median'} of {' and '.join(default)}"


def champion(settings: Settings, model_name: str, plot: Path | None = None, config: str | None = None) -> int:
    """Print the champion version (and copy its forecast plot to ``plot``); without one, why the
    newest version was not promoted and the next step (exit 3): the service answers nothing until
    a version passes both gates, so a chain such as ``make demo`` stops here and says so."""
    from model_registry.registry import EVALUATED_VERSION_TAG, champion_version, data_window
    from model_registry.tracking import client, literal

    version = champion_version(settings, model_name)
    if version is not None:
        print(f"{model_name} champion: v{version}")
        tags = dict(client(settings).get_model_version(model_name, version).tags)
        print("\n".join(gate_lines(version, tags)))
        if judged := tags.get(EVALUATED_VERSION_TAG):  # what serves is the judged fit refitted on every row
            refit = f"v{judged} refitted on every labelled row (data to {data_window(tags)[1] or '?'})"
            print(f"  served: v{version}, {refit}; the gates judged v{judged}")
        run_id = str(client(settings).get_model_version(model_name, version).run_id)
        if "leaderboard.csv" in {a.path for a in client(settings).list_artifacts(run_id)}:  # a selection's
            with tempfile.TemporaryDirectory() as tmp:
                board = Path(client(settings).download_artifacts(run_id, "leaderboard.csv", tmp)).read_text()
                choice = json.loads(Path(client(settings).download_artifacts(run_id, "choice.json", tmp)).read_text())
            print("\n".join(leaderboard_lines(board, choice)))
        if plot is not None:
            run_id = str(client(settings).get_model_version(model_name, version).run_id)
            with tempfile.TemporaryDirectory() as tmp:
                drawn = client(settings).download_artifacts(run_id, "forecast.png", tmp)
                plot.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(drawn, plot)
            print(f"{model_name} v{version} forecast plot: {plot}")
        return 0
    versions = client(settings).search_model_versions(f"name = {literal(model_name)}")
    if not versions:
        print(f"{model_name} has no version yet: train and register one first", file=sys.stderr)
        return 3
    newest = max(versions, key=lambda v: int(v.version))
    tags = dict(newest.tags)
    why = (tags.get("gate_decision_reason") or "it has not been through the gates").removeprefix("not promoted: ")
    print(f"{model_name} has no champion: v{newest.version} was not promoted ({why})", file=sys.stderr)
    print(f"  next: {next_step(tags, config or str(settings.dataset_config))}", file=sys.stderr)
    gates = "tags gate_champion_challenger_reason, gate_drift_reason"
    print(f"  each gate's reason is on v{newest.version} in MLflow ({gates}); the service answers nothing "
          "until a version passes both gates", file=sys.stderr)  # fmt: skip
    return 3


if __name__ == "__main__":
    sys.exit(main())
