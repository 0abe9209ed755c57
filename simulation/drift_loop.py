"""``python -m simulation.drift_loop``: the drift loop replayed on a dataset's features alone, in seconds a
day: the daily drift check of the champion, its retraining trigger, and the drift gate of the
retraining's refit, with the same functions the DAGs call (:mod:`feature_drift.measure`).

    python -m simulation.drift_loop --dataset configs/datasets/ett.yaml --start 2017-07-02 --days 30
    python -m simulation.drift_loop --dataset configs/datasets/m4_hourly.yaml --series 20 \\
        --start 2023-12-02 --days 30

For each shift (``none``, the control, and ``level``, ``scale``, ``daily_cycle`` on the first series
from ``--shift-day``, as ``python -m simulation --shift`` injects them), day by day: the champion's
check (the newest ``drift_window`` against the rows it was fit on before it); after
``drift_consecutive_checks`` drifted checks in a row a retraining whose refit is fit on every
labelled row up to the day, promoted when its drift gate passes. The champion/challenger gate is left
out (it needs the models; ``python -m simulation`` runs the whole loop): the days here are those the
drift decisions alone allow. Also, each day, whether a refit made that day would pass the drift gate
(``refits_blocked``: the days from the shift on where it would not; in the control, every day).

Writes ``drift_loop.json`` (``runs``: one object per shift with its days and figures) and
``drift_loop.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from core.columns import EVENT_TIMESTAMP
from core.dataset import DatasetConfig
from core.files import write_text_atomically
from core.settings import PROJECT_ROOT, Settings
from core.windows import end_of

SHIFTS = ("none", "level", "scale", "daily_cycle")


@dataclass
class LoopDay:
    """One day of the replayed loop."""

    day: str
    check_share: float | None  # the champion's check: the largest entity share, None without a verdict
    drifted: bool
    trigger: bool
    gate_share: float | None = None  # the triggered refit's gate
    promoted: bool = False
    fresh_refit_passes: bool | None = None  # a refit made this day, whatever triggered it


@dataclass
class LoopRun:
    """One shift's month: its days and what the loop did."""

    shift: str
    shift_day: str | None
    days: list[LoopDay] = field(default_factory=list)

    def _first(self, test: str) -> int | None:
        """Days from the shift (or the first day) to the first day where ``test`` holds."""
        start = date.fromisoformat(self.shift_day) if self.shift_day else date.fromisoformat(self.days[0].day)
        for day in self.days:
            if date.fromisoformat(day.day) >= start and getattr(day, test):
                return (date.fromisoformat(day.day) - start).days
        return None

    def figures(self) -> dict[str, object]:
        after = [d for d in self.days if self.shift_day is None or d.day >= self.shift_day]
        return {
            "shift": self.shift,
            "days_to_first_drifted_check": self._first("drifted"),
            "days_to_trigger": self._first("trigger"),
            "days_to_promotion": self._first("promoted"),
            "refits_blocked": sum(d.fresh_refit_passes is False for d in after),
            "drifted_checks": sum(d.drifted for d in self.days),
            "triggers": sum(d.trigger for d in self.days),
            "promotions": sum(d.promoted for d in self.days),
            "max_check_share": max((d.check_share or 0.0) for d in self.days),
        }


def features_of(raw: pd.DataFrame, dataset: DatasetConfig, shift: str, shift_day: date, entity: str) -> pd.DataFrame:
    """The offline feature table of ``raw`` with ``shift`` injected into ``entity`` from ``shift_day``."""
    from feature_store.features import build_features
    from simulation.source import Shift

    rows = raw[dataset.entity_column].astype(str) == entity
    shifted = Shift(kind=shift, start=shift_day, entity=entity).apply(
        raw, raw[dataset.timestamp_column], rows, dataset.target
    )
    return build_features(shifted, dataset)


def replay(
    features: pd.DataFrame, dataset: DatasetConfig, start: date, days: int, shift: str, shift_day: date
) -> LoopRun:
    """The loop over ``days`` days from ``start``, its first champion fit on the rows labelled by the
    day before ``start``."""
    from feature_drift.measure import compare_windows, current_span, fit_rows_of, reference_before

    config = dataset.promotion
    horizon = dataset.frequency.fixed * dataset.horizon
    stamps = features[EVENT_TIMESTAMP]

    def labelled_end(day: date) -> pd.Timestamp:
        return pd.Timestamp(end_of(day)) - dataset.frequency.fixed - horizon

    def largest(reference: pd.DataFrame, current: pd.DataFrame) -> float | None:
        shares = [e.drift_share for e in compare_windows(reference, current, dataset, Path()).values()]
        known = [s for s in shares if s is not None]
        return max(known) if known else None

    champion_end = labelled_end(start - timedelta(days=1))
    run = LoopRun(shift=shift, shift_day=shift_day.isoformat() if shift != "none" else None)
    streak = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        begin, end = current_span(dataset, day)
        current = features[(stamps >= begin) & (stamps < end)]
        seen = features[stamps < end]
        check = largest(reference_before(fit_rows_of(seen, champion_end, dataset), begin, dataset), current)
        drifted = check is not None and check > config.max_drift_share
        streak = streak + 1 if drifted else 0
        refit = reference_before(fit_rows_of(seen, labelled_end(day), dataset), begin, dataset)
        gate = largest(refit, current)
        passes = gate is not None and gate <= config.max_drift_share
        today = LoopDay(
            day=day.isoformat(), check_share=check, drifted=drifted, trigger=False, fresh_refit_passes=passes
        )
        if streak >= config.drift_consecutive_checks:
            today.trigger, today.gate_share, streak = True, gate, 0
            if gate is None or passes:  # no verdict lets a promotion through, as the gate does
                today.promoted, champion_end = True, labelled_end(day)
        run.days.append(today)
    return run


def days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):g} days"


def markdown(dataset: DatasetConfig, runs: list[LoopRun], command: str) -> str:
    config = dataset.promotion
    lines = [
        f"# The drift loop replayed on {dataset.name}",
        "",
        f"`{command}`",
        "",
        f"drift_window {days(config.drift_window)}, drift_reference {days(config.drift_reference_span)}, "
        f"threshold {config.drift_threshold} ({config.drift_method}), max share {config.max_drift_share}, "
        f"{config.drift_consecutive_checks} drifted checks in a row trigger a retraining. Days counted from the "
        "shift (the control: from the first day); '-' never.",
        "",
        "| shift | first drifted check | trigger | promotion (drift gate) | days a refit is blocked | "
        "drifted checks | triggers | promotions | largest check share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def cell(value: object) -> str:
        return "-" if value is None else str(value)

    for run in runs:
        f = run.figures()
        lines.append(
            f"| {run.shift} | {cell(f['days_to_first_drifted_check'])} | {cell(f['days_to_trigger'])} | "
            f"{cell(f['days_to_promotion'])} | {f['refits_blocked']} | {f['drifted_checks']} | "
            f"{f['triggers']} | {f['promotions']} | {float(f['max_check_share']):.2f} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulation.drift_loop",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "configs" / "datasets" / "ett.yaml")
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first replayed day, YYYY-MM-DD")
    parser.add_argument("--days", type=int, default=30, help="how many days (default: 30)")
    parser.add_argument(
        "--shift-day", type=int, default=8, help="the day the shifts start on, 0 the first (default: 8)"
    )
    parser.add_argument(
        "--series", type=int, default=None, help="only the series with the longest histories, this many (default: all)"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports", help="folder of the reports")
    args = parser.parse_args(argv)

    from data_pipeline.ingest import load_source

    dataset = DatasetConfig.from_yaml(args.dataset)
    # No HTML report: the figures are the point, and a report costs seconds an entity.
    dataset = dataset.model_copy(update={"promotion": dataset.promotion.model_copy(update={"drift_reports": 0})})
    raw = load_source(dataset, Settings(dataset_config=args.dataset, _env_file=None))  # type: ignore[call-arg]
    key = dataset.entity_column
    if args.series is not None:
        counts = raw[key].value_counts()
        chosen = sorted(counts.sort_values(ascending=False, kind="stable").index[: args.series])
        raw = raw[raw[key].isin(chosen)].reset_index(drop=True)
    entity = sorted(raw[key].astype(str).unique())[0]
    shift_day = args.start + timedelta(days=args.shift_day)
    runs = []
    for shift in SHIFTS:
        features = features_of(raw, dataset, shift, shift_day, entity)
        runs.append(replay(features, dataset, args.start, args.days, shift, shift_day))
        print(json.dumps(runs[-1].figures()), flush=True)
    command = "python -m simulation.drift_loop " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": dataset.name,
        "series": int(raw[key].nunique()),
        "shifted_series": entity,
        "command": command,
        "runs": [{**run.figures(), "days": [asdict(d) for d in run.days]} for run in runs],
    }
    write_text_atomically(json.dumps(report, indent=2), args.out / "drift_loop.json")
    write_text_atomically(markdown(dataset, runs, command), args.out / "drift_loop.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
