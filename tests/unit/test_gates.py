import pytest

from configs.dataset import DatasetConfig
from model_validation.backtest_champion import BacktestRegressionError, ModelBacktest, check_regression
from model_validation.decision import explain_skip, promotion_allowed


def _backtest(role: str, ratio: float) -> ModelBacktest:
    return ModelBacktest(role, "3", 1.0 * ratio, 1.2, 5.0, 2.0, 1.0, ratio, 2, "run")


def test_nightly_check_fails_past_the_ratio_with_a_clear_message(dataset: DatasetConfig) -> None:
    bound = dataset.promotion.backtest_error_ratio
    check_regression(dataset, [_backtest("champion", bound)])  # at the bound: still fine
    check_regression(dataset, [_backtest("champion", 1.0), _backtest("challenger", bound * 3)])
    with pytest.raises(BacktestRegressionError, match=r"champion v3 of synthetic: nightly MAE .* 1\.60x"):
        check_regression(dataset, [_backtest("champion", bound + 0.1)])


def test_force_overrides_the_drift_gate_only() -> None:
    passed = {"passed": True, "reason": "ok"}
    failed = {"passed": False, "reason": "MAE 2 >= naive 1"}
    assert promotion_allowed(passed, {"outcome": "passed"})
    assert promotion_allowed(passed, {"outcome": "forced"})
    assert promotion_allowed(passed, {"outcome": "not_enough_data"})
    assert not promotion_allowed(passed, {"outcome": "blocked", "reason": "share 0.9"})
    assert not promotion_allowed(failed, {"outcome": "forced"})
    assert "champion/challenger gate failed: MAE 2" in explain_skip(failed, {"outcome": "passed"})
