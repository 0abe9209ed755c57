"""Accuracy benchmark: a published long-horizon protocol, run through the platform's model families.

``python -m benchmarks.accuracy --config configs/benchmarks/ltsf_univariate.yaml`` writes
``reports/accuracy.json`` (one object per series, model and horizon), ``reports/accuracy.md`` and
``reports/accuracy.png`` (MSE and MAE per horizon against the published numbers).
The families are the ones training uses, unchanged: the benchmark only builds their feature rows (the
last ``lookback`` target values as lag columns) from the split series. Results that match the papers
show that the families and their training loop are neither leaking (better) nor broken (worse).

With an ``intervals:`` section it also measures the prediction intervals every bundle carries:
split-conformal half-widths per step, adaptive to each window's recent movement
(:func:`model_bundle.intervals.calibrate`), from the
validation split's errors of the model the point rows fitted, scored on the test split (coverage,
mean width, interval score), next to mlforecast's conformal intervals with the same base learner on
the same splits and test origins. mlforecast is the benchmarks' own dependency
(``requirements-bench.txt``), imported only when that peer runs.

The benchmark's parts: :mod:`.protocol` (the config, the windows and splits of the series),
:mod:`.models` (the families fitted, tuned and scored), :mod:`.intervals` (the bands, ours and the
peer's), :mod:`.report` (the targets and ``accuracy.{json,md}``); ``python -m benchmarks.accuracy``
runs them (:mod:`.__main__`).
"""
