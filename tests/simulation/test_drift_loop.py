"""The drift loop replayed on features alone (``python -m simulation.drift_loop``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.utils.data import synthetic_frame, write_dataset

pytestmark = [pytest.mark.integration]


def test_a_retraining_is_promoted_only_once_the_change_is_older_than_the_window_it_is_judged_on(
    tmp_path: Path,
) -> None:
    """Without a change nothing drifts and nothing retrains; after one, the champion's checks drift and
    trigger a retraining, but the first refit has seen the change only inside the window its drift gate
    judges, which is never part of its reference: blocked. A later one, fit on the change before that
    window, is promoted, and the checks of the new champion are steady again."""
    from simulation.drift_loop import main

    config = write_dataset(tmp_path / "dataset", frame=synthetic_frame(days=60))
    args = ["--dataset", str(config), "--start", "2024-03-12", "--days", "20", "--shift-day", "5"]
    assert main([*args, "--out", str(tmp_path / "out")]) == 0
    runs = {run["shift"]: run for run in json.loads((tmp_path / "out" / "drift_loop.json").read_text())["runs"]}
    assert set(runs) == {"none", "level", "scale", "daily_cycle"}
    control = runs["none"]
    assert (control["drifted_checks"], control["triggers"], control["refits_blocked"]) == (0, 0, 0)
    for shift in ("scale", "daily_cycle"):
        run = runs[shift]
        triggered = [day for day in run["days"] if day["trigger"]]
        assert triggered, shift
        assert not triggered[0]["promoted"], f"{shift}: a refit judged on the change it has just seen"
        assert triggered[0]["gate_share"] > 0.5
        promoted = [day for day in run["days"] if day["promoted"]]
        assert promoted, shift
        assert run["days_to_promotion"] > run["days_to_trigger"] >= run["days_to_first_drifted_check"]
        after = [day for day in run["days"] if day["day"] > promoted[0]["day"]]
        assert after
        assert not any(day["drifted"] for day in after), f"{shift}: the new champion's checks drift"
    assert "| scale |" in (tmp_path / "out" / "drift_loop.md").read_text()
