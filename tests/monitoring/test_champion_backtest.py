"""The nightly backtest's verdict on the champion's recent error."""

import pytest

from core.dataset import DatasetConfig
from monitoring.champion_backtest import BacktestRegressionError, check_regression
from monitoring.outcomes import ModelBacktest


def _backtest(role: str, ratio: float) -> ModelBacktest:
    return ModelBacktest(
        role=role, version="3", mae=1.0 * ratio, rmse=1.2, smape=5.0, baseline_mae=2.0, registered_mae=1.0,
        ratio=ratio, folds=2, run_id="run",
    )  # fmt: skip


def test_nightly_check_fails_past_the_ratio_with_a_clear_message(dataset: DatasetConfig) -> None:
    bound = dataset.promotion.backtest_error_ratio
    check_regression(dataset, [_backtest("champion", bound)])  # at the bound: still fine
    check_regression(dataset, [_backtest("champion", 1.0), _backtest("challenger", bound * 3)])
    with pytest.raises(BacktestRegressionError, match=r"champion v3 of synthetic: nightly MAE .* 1\.60x"):
        check_regression(dataset, [_backtest("champion", bound + 0.1)])
