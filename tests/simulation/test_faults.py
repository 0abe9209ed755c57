"""The fault plan and the split of the service's answers by fault windows (no servers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulation.faults import (
    STANDARD,
    Fault,
    answered_stats,
    availability,
    first_ok_after,
    kinds_of,
    plan,
    read_answers,
)

DAYS = [f"2017-07-{d:02d}" for d in range(2, 32)]
TASKS = {"ingest": ["build_features", "ingest", "materialize", "validate"], "forecast": ["issue_forecasts"],
         "score": ["publish", "score"]}  # fmt: skip


def tasks_of(dag: str) -> list[str]:
    return TASKS.get(dag, ["task"])


def test_the_standard_plan_is_seeded_each_fault_once_on_days_of_its_own() -> None:
    first = plan(kinds_of("standard"), DAYS, 7, tasks_of)
    assert plan(kinds_of("standard"), DAYS, 7, tasks_of) == first
    assert plan(kinds_of("standard"), DAYS, 8, tasks_of) != first
    assert sorted(f.kind for f in first) == sorted(STANDARD)
    assert len({f.day for f in first}) == len(STANDARD)
    assert DAYS[0] not in {f.day for f in first}, "the first day scores the bootstrap's forecasts undisturbed"
    killed = next(f for f in first if f.kind == "kill_task")
    assert killed.task in tasks_of(killed.dag)
    unavailable = next(f for f in first if f.kind == "s3_unavailable")
    assert 20 <= unavailable.seconds <= 40


def test_fault_kinds_are_checked() -> None:
    assert kinds_of("none") == []
    assert kinds_of("bad_rows, restart_redis") == ["bad_rows", "restart_redis"]
    with pytest.raises(ValueError, match="unknown faults \\['reboot'\\]"):
        kinds_of("bad_rows,reboot")


def test_answers_are_split_by_fault_windows(tmp_path: Path) -> None:
    # 100 requests, one a second from t=1000: a Redis outage from 1010 to 1019 (its 10 answers 503
    # but the last) and a worker kill at 1050-1052 that cost one request.
    sent = 1000.0 + np.arange(100)
    status = np.full(100, 200)
    status[10:19] = 503
    status[51] = 0
    lines = [f"{s:.3f},{0.002 + 0.001 * (i % 7):.4f},{c}" for i, (s, c) in enumerate(zip(sent, status, strict=True))]
    path = tmp_path / "load.csv"
    path.write_text("\n".join(reversed(lines)) + "\n")  # answers arrive out of order
    rows = read_answers(path)
    assert rows[0, 0] == 1000.0

    redis = Fault("restart_redis", "d", "ingest", "materialize", 0.0, struck=1010.0, ended=1013.0, healed=1019.5)
    worker = Fault("kill_worker", "d", "score", "score", 0.0, struck=1050.0, ended=1052.0, healed=1052.0)
    never = Fault("bad_rows", "d", "ingest", "ingest", 0.0)  # did not strike: no window
    served = availability(rows, [redis, worker, never])
    assert served["overall"]["requests"] == 100
    assert served["overall"]["errors"] == 10
    assert served["outside_redis_outage"] == answered_stats(np.delete(rows, np.s_[10:20], axis=0))
    assert served["outside_redis_outage"]["errors"] == 1
    assert served["outside_faults"]["errors"] == 0
    assert [(w["kind"], w["requests"], w["errors"]) for w in served["per_fault"]] == [
        ("restart_redis", 10, 9),
        ("kill_worker", 3, 1),
    ]
    assert first_ok_after(rows, 1013.0) == pytest.approx(1019.0 + rows[19, 1])
    assert redis.heal_s == 9.5
    assert never.heal_s is None
