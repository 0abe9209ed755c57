"""The daily watchers of the models that serve, and the Prometheus and Grafana setup they feed.

Every day, after the data: the drift check of the champion against its evidence, which may call for a
retraining (:mod:`monitoring.champion_drift`); the nightly backtest of the champion and a newer
challenger on the newest folds (:mod:`monitoring.champion_backtest`); the scoring of stored forecasts
on their actuals (:mod:`monitoring.forecast_scoring`). Their figures go to the Pushgateway
(:mod:`core.pushgateway`); ``prometheus/``, ``grafana/`` and ``statsd/`` hold the configuration that
scrapes, alerts on and charts them.

A sibling of :mod:`model_validation` (what decides a promotion), not above or below it: a watcher
never needs a gate, a gate never needs a watcher; the drift measurement both use is
:mod:`feature_drift`, below both.
"""
