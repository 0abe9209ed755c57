"""What decides a promotion: the champion/challenger gate, the drift gate, the decision that joins
them, and ``python -m model_validation`` to run them by hand.

The daily watchers of the serving models (drift check, nightly backtest, scoring on actuals) are
:mod:`monitoring`, a sibling; the drift measurement both use is :mod:`feature_drift`.
"""
