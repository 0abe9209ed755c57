"""The simulation's report: what each day did (:class:`Day`), the checks computed from the stores,
how the drift loop answered a shift, the faults and the service's answers under them, and the
markdown of it all.

Every check reads the stores themselves (partitions, forecast table, scores, registry), not what the
DAGs reported: a DAG that says it succeeded while leaving a partition twice fails a check here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from datetime import time as clock
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.windows import end_of
from simulation.source import Shift

if TYPE_CHECKING:
    from simulation.replay import Simulation


@dataclass
class Day:
    """What one simulated day did (one object of the report's ``days``)."""

    day: str
    rows_landed: int
    forecasts_issued: int
    forecasts_scored: int
    champion_mae: float | None
    naive_mae: float | None
    drift_share: float | None
    drift_state: str | None
    retrains: int
    promotions: int
    forced_promotions: int
    champion_version: str | None
    failed_dags: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    faults: list[str] = field(default_factory=list)  # the faults that struck the day


def drift_loop(simulation: Simulation, days: list[Day], shift: Shift) -> dict[str, Any]:
    """How the drift loop answered the injected shift (or, without one, how often it fired anyway)."""

    def first(predicate: Callable[[Day], bool], after: str | None) -> str | None:
        return next((d.day for d in days if (after is None or d.day >= after) and predicate(d)), None)

    shift_day = shift.start.isoformat() if shift.kind != "none" and shift.start else None
    first_drifted = first(lambda d: d.drift_state == "drifted", shift_day)
    trigger = first(lambda d: d.retrains > 0, shift_day)
    promotion = first(lambda d: d.promotions > 0, trigger) if trigger else None
    loop: dict[str, Any] = {
        "shift": shift.kind,
        "shift_entity": simulation.source.shifted_entity,
        "shift_day": shift_day,
        "first_drifted_day": first_drifted,
        "trigger_day": trigger,
        "promotion_day": promotion,
        "forced": any(d.forced_promotions for d in days),
        "drift_triggered_retrains": sum(d.retrains for d in days),
        "days_to_first_drifted": _days_between(shift_day, first_drifted),
        "days_from_trigger_to_promotion": _days_between(trigger, promotion),
        "post_shift_champion_mae": None,
        "post_shift_old_champion_mae": None,
        "post_shift_targets": 0,
    }
    if promotion is not None:
        index = [d.day for d in days].index(promotion)
        replaced = days[index - 1].champion_version if index else None
        promoted = days[index].champion_version
        if replaced and promoted:
            by_entity = simulation.post_promotion_maes(promoted, replaced, date.fromisoformat(promotion))
            # The change's targets are the shifted entity's; the others show what replacing the
            # model for every entity cost or gained where nothing changed.
            new, old, targets = by_entity.get(simulation.source.shifted_entity or "", (None, None, 0))
            loop |= {
                "promoted_version": promoted,
                "replaced_version": replaced,
                "post_shift_champion_mae": new,
                "post_shift_old_champion_mae": old,
                "post_shift_targets": targets,
                "post_promotion_by_entity": {
                    entity: {"champion_mae": n, "old_champion_mae": o, "targets": t}
                    for entity, (n, o, t) in by_entity.items()
                },
            }
    return loop


def _days_between(start: str | None, end: str | None) -> int | None:
    if start is None or end is None:
        return None
    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def checks(simulation: Simulation, days: list[date]) -> dict[str, bool]:
    """What the stores say about the simulated days, each a named yes/no."""
    from core.columns import EVENT_TIMESTAMP
    from core.objects import exists, read_parquet
    from core.partitions import landing_path, validated_path
    from feature_store.features import feature_table_location
    from forecast_store import store
    from forecast_store.schema import BATCH

    settings, dataset = simulation.settings, simulation.dataset
    keys = [dataset.entity_column, dataset.timestamp_column]

    def unique(location: str, columns: list[str]) -> bool:
        return exists(location, settings) and not read_parquet(location, settings)[columns].duplicated().any()

    issued = store.issued(settings, dataset.name, source=BATCH)
    scored = store.scored(settings, dataset.name)
    horizon_end = end_of(days[-1])
    batch_scores = [r for r in scored if r["source"] == BATCH and r["naive_error"] is not None]
    mae = sum(abs(r["error"]) for r in batch_scores) / max(len(batch_scores), 1)
    naive = sum(abs(r["naive_error"]) for r in batch_scores) / max(len(batch_scores), 1)
    return {
        "no_missing_partition": all(
            exists(landing_path(settings, dataset, d), settings)
            and exists(validated_path(settings, dataset, d), settings)
            for d in days
        ),
        "no_duplicate_partition": all(unique(validated_path(settings, dataset, d), keys) for d in days)
        and unique(feature_table_location(settings, dataset), [dataset.entity_column, EVENT_TIMESTAMP]),
        "one_forecast_per_entity_per_day": one_forecast_per_entity_per_day(issued, simulation.source, dataset, days),
        # "once" is the scores table's unique forecast id; what can fail is a due forecast left unscored
        "every_due_forecast_scored": bool(scored)
        and store.count_due_unscored(settings, dataset.name, horizon_end) == 0,
        "champion_beats_naive": bool(batch_scores) and mae < naive,
        **ledger(simulation, days),
    }


def one_forecast_per_entity_per_day(issued: list[Any], source: Any, dataset: Any, days: list[date]) -> bool:
    """Each day's batch forecasts are one per step of every entity the source has rows of that day:
    expected from the source, not from the forecasts (an entity never forecast is missed)."""
    per_day: dict[date, list[tuple[str, int]]] = {}
    for r in issued:
        per_day.setdefault(r.data_date, []).append((r.entity_id, r.step))
    for day in days:
        entities = set(source.day_rows(day)[dataset.entity_column])
        if sorted(per_day.get(day, [])) != sorted((e, h) for e in entities for h in range(1, dataset.horizon + 1)):
            return False
    return True


def ledger(simulation: Simulation, days: list[date]) -> dict[str, bool]:
    """What must hold whatever failed on the way: every day's validated partition holds exactly the
    source's rows of the day (a refused file's rows never, the corrected file's rows once); no
    training run became two versions; no champion failed a gate; a refused day left nothing behind."""
    from core.objects import exists, read_parquet
    from core.partitions import validated_path
    from model_registry.registry import EVALUATED_VERSION_TAG
    from model_registry.tracking import client, literal

    settings, dataset = simulation.settings, simulation.dataset
    entity, stamp, target = dataset.entity_column, dataset.timestamp_column, dataset.target

    def day_landed_once(day: date) -> bool:
        location = validated_path(settings, dataset, day)
        if not exists(location, settings):
            return False
        frame = read_parquet(location, settings)
        stamps = pd.to_datetime(frame[stamp], utc=True)
        start = pd.Timestamp(datetime.combine(day, clock(), tzinfo=UTC))
        landed = frame[(stamps >= start) & (stamps < start + pd.Timedelta(days=1))]
        truth = simulation.source.day_rows(day)
        if len(landed) != len(truth) or landed.duplicated([entity, stamp]).any():
            return False
        keyed = landed.assign(_stamp=stamps[landed.index], **{entity: landed[entity].astype(str)})
        merged = truth.merge(keyed, on=[entity, "_stamp"], suffixes=("_source", "_landed"))
        return len(merged) == len(truth) and np.allclose(
            merged[f"{target}_source"].astype(float), merged[f"{target}_landed"].astype(float), equal_nan=False
        )

    mlflow = client(settings)
    every_version = mlflow.search_model_versions(f"name = {literal(simulation.model_name)}")
    # A training run's refit (on every labelled row) is a second version of the same run: the version
    # of the run is the fit the gates judged, which the refit names.
    versions = [v for v in every_version if EVALUATED_VERSION_TAG not in v.tags]
    judged = {str(v.version): str(v.tags.get(EVALUATED_VERSION_TAG, v.version)) for v in every_version}
    runs = [v.run_id for v in versions]
    dag_runs = [v.tags.get("dag_run_id") for v in versions if v.tags.get("dag_run_id")]
    gates = {str(v.version): v.tags for v in versions}
    failed_gate = {
        version for version, tags in gates.items()
        if tags.get("gate_champion_challenger") == "failed" or tags.get("gate_drift") == "blocked"
    }  # fmt: skip
    champions_judged = {judged.get(version, version) for version in simulation.champions}
    checked = {
        "every_day_landed_once": all(day_landed_once(d) for d in days),
        "one_version_per_training_run": len(runs) == len(set(runs)) and len(dag_runs) == len(set(dag_runs)),
        "champion_never_failed_a_gate": bool(simulation.champions) and not (champions_judged & failed_gate),
    }
    # Only where the plan gave a bad file: over no refusal at all it could not be false.
    if any(f.kind == "bad_rows" for f in simulation.faults):
        checked["refused_days_left_nothing"] = refusals_left_nothing(simulation.faults, simulation.refusals)
    return checked


def refusals_left_nothing(faults: list[Any], refusals: dict[str, dict[str, bool]]) -> bool:
    """Every day the fault plan gave a bad file was refused and left nothing behind. Expected from
    the plan, not from the refusals seen: a bad file that validation accepted fails this."""
    bad_days = {f.day for f in faults if f.kind == "bad_rows"}
    return all(day in refusals and all(refusals[day].values()) for day in bad_days)


def summary(days: list[Day], passed: dict[str, bool]) -> dict[str, Any]:
    """The report's totals: realized MAE over the period and the median wall time of a plain day."""
    scored = [d for d in days if d.champion_mae is not None and d.naive_mae is not None]
    plain = sorted(d.wall_s for d in days if d.retrains == 0)
    return {
        "days": len(days),
        "champion_mae": sum(d.champion_mae for d in scored) / len(scored) if scored else None,  # type: ignore[misc]
        "naive_mae": sum(d.naive_mae for d in scored) / len(scored) if scored else None,  # type: ignore[misc]
        "retrains": sum(d.retrains for d in days),
        "promotions": sum(d.promotions for d in days),
        "median_wall_s_without_retraining": plain[len(plain) // 2] if plain else None,
        "max_wall_s_without_retraining": plain[-1] if plain else None,
        "all_checks_passed": all(passed.values()),
    }


def markdown(report: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    totals = report["summary"]
    runs = (
        "the ingest triggered on Airflow's scheduler, which starts forecast, score, drift monitor and nightly "
        "backtest on their Assets (and a retraining when the drift monitor triggers one)"
        if "faults" in report
        else "`dag.test()` of ingest, forecast, score, drift monitor and nightly backtest (and a retraining when "
        "the drift monitor triggers one)"
    )
    lines = [
        f"# Simulation of the daily loop: {report['dataset']}, {report['start']} + {totals['days']} days",
        "",
        f"Command: `{report['command']}`. Each day: the source revealed up to its end, then {runs}.",
        "",
        f"- realized MAE over the period: champion {cell(totals['champion_mae'])}, seasonal naive "
        f"{cell(totals['naive_mae'])}",
        f"- retrainings {totals['retrains']}, promotions {totals['promotions']}",
        f"- wall time of a day without retraining: median {cell(totals['median_wall_s_without_retraining'])} s, "
        f"max {cell(totals['max_wall_s_without_retraining'])} s",
        "",
        *_loop_lines(report.get("drift_loop", {})),
        *_fault_lines(report.get("faults")),
        "| check | passed |",
        "|---|---|",
        *[f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in report["checks"].items()],
        "",
        "| day | rows landed | forecasts issued | scored | champion MAE | naive MAE | drift share | drift | retrains | "
        "promotions | champion | wall s | failed DAGs | faults |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in report["days"]:
        lines.append(
            f"| {d['day']} | {d['rows_landed']} | {d['forecasts_issued']} | {d['forecasts_scored']} | "
            f"{cell(d['champion_mae'])} | {cell(d['naive_mae'])} | {cell(d['drift_share'])} | "
            f"{d.get('drift_state') or '-'} | {d['retrains']} | "
            f"{d['promotions']} | v{d['champion_version']} | {d['wall_s']} | {', '.join(d['failed_dags']) or '-'} | "
            f"{', '.join(d.get('faults', [])) or '-'} |"
        )
    return "\n".join(lines) + "\n"


def _fault_lines(faults: dict[str, Any] | None) -> list[str]:
    """The faults as they struck (seeded schedule), how long the loop took to heal from each, and the
    service's answers in each fault's window and outside them."""
    if not faults:
        return []

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    def share(stats: dict[str, Any]) -> str:
        return "-" if stats["ok_share"] is None else f"{100 * stats['ok_share']:.2f} %"

    lines = [
        f"Faults `{faults['option']}`, seed {faults['seed']} (the same seed, the same schedule):",
        "",
        "| day | fault | DAG | task it struck | struck (UTC) | healed after s | healed by | runs of the DAG "
        "| tries of the task | notes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in faults["schedule"]:
        lines.append(
            f"| {f['day']} | {f['kind']} | {f['dag']} | {cell(f['hit_task'] or f['task'])} | "
            f"{cell(f['struck'])} | {cell(f['heal_s'])} | {cell(f.get('healed_by'))} | {f['attempts']} | "
            f"{cell(f.get('tries'))} | {'; '.join(f['notes']) or '-'} |"
        )
    if acts := faults.get("operator_acts"):
        lines += ["", "Runs an operator cleared: " + ", ".join(f"{a['day']} {a['dag']}" for a in acts) + "."]
    service = faults["service"]
    lines += [
        "",
        "The service under load (answers with 2xx, and latency of the answered requests):",
        "",
        "| window | seconds | requests | 2xx | errors | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for w in service["per_fault"]:
        lines.append(
            f"| {w['day']} {w['kind']} | {w['seconds']} | {w['requests']} | {share(w)} | {w['errors']} | "
            f"{cell(w['p50_ms'])} | {cell(w['p99_ms'])} |"
        )
    for name in ("outside_faults", "outside_redis_outage", "overall"):
        w = service[name]
        lines.append(
            f"| {name.replace('_', ' ')} | - | {w['requests']} | {share(w)} | {w['errors']} | "
            f"{cell(w['p50_ms'])} | {cell(w['p99_ms'])} |"
        )
    return [*lines, ""]


def _loop_lines(loop: dict[str, Any]) -> list[str]:
    """The drift loop's table (what a shift led to, or the false alarms of a run without one)."""
    if not loop:
        return []
    keys = ["shift", "shift_entity", "shift_day", "first_drifted_day", "trigger_day", "promotion_day", "forced",
            "drift_triggered_retrains", "days_to_first_drifted", "days_from_trigger_to_promotion",
            "post_shift_champion_mae", "post_shift_old_champion_mae", "post_shift_targets"]  # fmt: skip
    rows = [f"| {key} | {'-' if loop.get(key) is None else loop[key]} |" for key in keys]
    lines = ["| drift loop | |", "|---|---|", *rows, ""]
    if by_entity := loop.get("post_promotion_by_entity"):
        lines += [
            f"From the promotion on, v{loop['promoted_version']} (batch) against v{loop['replaced_version']} "
            "(shadow), same targets:",
            "",
            "| entity | new champion MAE | old champion MAE | targets |",
            "|---|---|---|---|",
            *(
                f"| {entity} | {m['champion_mae']:.3f} | {m['old_champion_mae']:.3f} | {m['targets']} |"
                for entity, m in by_entity.items()
            ),
            "",
        ]
    return lines


AVAILABILITY_GOALS = {"outside_redis_outage": 0.999, "overall": 0.99}


def fault_report(simulation: Simulation, answers: Path, seed: int, option: str) -> dict[str, Any]:
    """The faults as they struck, the time the loop took to heal from each, and the service's answers
    per fault window; with the checks they decide."""
    from simulation.faults import answered_stats, availability, first_ok_after, read_answers

    rows = read_answers(answers)
    for fault in simulation.faults:
        if fault.kind == "restart_redis" and fault.ended is not None:
            # Whole again once the service answers from the restarted Redis (and the DAG it hit ran).
            back = first_ok_after(rows, fault.ended)
            fault.healed = max(t for t in (fault.healed, back, fault.ended) if t is not None)
    served = availability(rows, simulation.faults)
    load = simulation.load
    unanswered = int((rows[:, 2] == 0).sum()) if rows.size else 0
    # The faults' own checks only where faults were planned (SERVERS=1 runs the control without any).
    struck = {
        "every_fault_struck": all(f.injected for f in simulation.faults),
        "every_fault_healed": all(f.healed is not None for f in simulation.faults),
        "heals_automatic_but_the_corrected_file": heals_automatic(simulation.faults, simulation.operator_acts),
    }
    checks = {
        **(struck if simulation.faults else {}),
        "load_ran_throughout": load is not None and load_ran_throughout(rows, load.started, load.stopped, load.rate),
        "every_answered_forecast_stored": load is not None
        and answered_forecasts_stored(simulation.settings, simulation.name, load.answered, unanswered),
        **{
            f"availability_{name}_at_least_{goal:g}": (served[name]["ok_share"] or 0.0) >= goal
            for name, goal in AVAILABILITY_GOALS.items()
        },
    }
    return {
        "option": option,
        "seed": seed,
        "schedule": [
            {
                **asdict(f),
                "heal_s": f.heal_s,
                "struck": _clock(f.struck),
                "ended": _clock(f.ended),
                "healed": _clock(f.healed),
            }
            for f in simulation.faults
        ],
        "service": served,
        "operator_acts": simulation.operator_acts,
        "checks": checks,
        "answers_before_first_fault": answered_stats(
            rows[rows[:, 0] < min((f.struck for f in simulation.faults if f.struck), default=float("inf"))]
        )
        if rows.size
        else None,
    }


# The one fault whose heal is an operator's act: a corrected file is a person's answer to a refusal.
OPERATOR_HEALS = ("bad_rows",)


def heals_automatic(faults: list[Any], operator_acts: list[dict[str, str]]) -> bool:
    """Every fault healed by Airflow's retries and recovery (or the servers' own), except a refused
    bad file, whose corrected file an operator delivers and whose run they clear; and the operator
    cleared nothing else."""
    expected = {(f.day, f.dag) for f in faults if f.kind in OPERATOR_HEALS}
    acted = {(a["day"], a["dag"]) for a in operator_acts}
    return (
        all(f.healed_by == ("operator" if f.kind in OPERATOR_HEALS else "automatic") for f in faults)
        and acted <= expected
    )


LOAD_SHARE = 0.95  # of rate x duration, the requests a load that ran throughout has sent
LOAD_EDGE_SECONDS = 5.0  # its first and last requests this close to the run's start and end


def load_ran_throughout(rows: np.ndarray, started: float, stopped: float, rate: float) -> bool:
    """The load driver sent for the whole run at its rate: requests at least :data:`LOAD_SHARE` of
    rate x duration, the first and the last within :data:`LOAD_EDGE_SECONDS` of the run's start and
    end. A driver that died midway, or was starved, fails this, and with it the availability figures
    it alone stands behind."""
    if rows.size == 0:
        return False
    sent = rows[:, 0]
    return bool(
        len(sent) >= LOAD_SHARE * rate * (stopped - started)
        and sent.min() <= started + LOAD_EDGE_SECONDS
        and sent.max() >= stopped - LOAD_EDGE_SECONDS
    )


def answered_forecasts_stored(settings: Any, dataset: str, answered: Path, unanswered: int) -> bool:
    """Each forecast the load got a 2xx for is in the forecast table (source ``online``), once, with
    the values it was answered with: the row of its entity, features' event time, version and step,
    whose ``answers`` are at least the times the load was answered it, and exceed them by no more
    than the requests the load gave up on (the service may have answered those after it stopped
    waiting)."""
    import json
    import math
    from collections import Counter

    from forecast_store import store
    from forecast_store.schema import ONLINE

    lines = [json.loads(line) for line in answered.read_text().splitlines() if line] if answered.exists() else []
    if not lines:
        return False
    online = store.issued(settings, dataset, source=ONLINE)
    stored = {(r.entity_id, r.model_version, r.issue_time, r.step): r for r in online}
    times: Counter[tuple[str, str, datetime]] = Counter()
    for line in lines:
        event_time = datetime.fromisoformat(line["feature_event_time"]).astimezone(UTC)
        key = (line["entity_id"], line["model_version"], event_time)
        for step, value in enumerate(line["values"], start=1):
            row = stored.get((*key, step))
            if row is None or not math.isclose(row.value, value, rel_tol=1e-9, abs_tol=1e-12):
                return False
        times[key] += 1
    extra = 0
    for key, count in times.items():
        answers = stored[(*key, 1)].answers
        if answers < count:
            return False
        extra += answers - count
    return extra <= unanswered


def _clock(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")
