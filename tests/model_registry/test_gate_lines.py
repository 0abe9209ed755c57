"""What ``python -m model_registry champion`` (and so ``make demo``) says of the champion's gates."""

from model_registry.__main__ import gate_lines


def test_a_drift_gate_without_a_verdict_is_said_out_loud() -> None:
    tags = {
        "gate_champion_challenger": "passed",
        "gate_champion_challenger_reason": "holdout MASE 0.9 < seasonal naive 1.0",
        "gate_drift": "not_enough_data",
        "gate_drift_reason": "not enough data: 40 current and 400 reference rows",
    }
    lines = gate_lines("3", tags)
    assert lines[:2] == [
        "  champion/challenger gate: passed (holdout MASE 0.9 < seasonal naive 1.0)",
        "  drift gate: not_enough_data (not enough data: 40 current and 400 reference rows)",
    ]
    assert [line for line in lines if line.startswith("  note:")] == [
        "  note: the drift gate gave no verdict on v3 (too few rows per series in its windows: "
        "promotion.drift_window, promotion.min_drift_rows); it was promoted on the holdout alone"
    ]


def test_a_drift_gate_with_a_verdict_needs_no_note() -> None:
    lines = gate_lines("1", {"gate_drift": "passed", "gate_drift_reason": "drift share at most 0.50"})
    assert lines[1] == "  drift gate: passed (drift share at most 0.50)"
    assert not [line for line in lines if "note:" in line]
    assert lines[0] == "  champion/challenger gate: not run (no reason recorded)"


def test_a_selection_champion_shows_its_leaderboard() -> None:
    from model_registry.__main__ import leaderboard_lines

    board = "candidate,mase,series_best,mae\nseasonal_naive,0.91,2,1.5\nnaive,1.20,1,2.0\nauto_ets,1.31,0,2.2\n"
    choice = {"default": ["seasonal_naive"], "series": {"walk": ["naive"], "daily": ["seasonal_naive"]}}
    assert leaderboard_lines(board, choice) == [
        "  candidates (backtest MASE, mean over series; the series each one forecasts):",
        "    seasonal_naive             0.9100  best on     2  forecasts     1",
        "    naive                      1.2000  best on     1  forecasts     1",
        "    auto_ets                   1.3100  best on     0  forecasts     0",
        "  2 series have a choice of their own; any other gets ['seasonal_naive']",
    ]


def test_a_combination_says_how_a_series_without_its_own_choice_is_forecast() -> None:
    from model_registry.__main__ import default_text

    weighted = {"default": ["mstl", "seasonal_naive"], "combine": "weighted", "default_weights": [0.6, 0.4]}
    assert default_text(weighted) == "mstl x 0.60 + seasonal_naive x 0.40"
    assert default_text({"default": ["mstl", "naive"], "combine": "mean"}) == "the mean of mstl and naive"
    assert default_text({"default": ["naive"], "combine": "median"}) == "['naive']"
