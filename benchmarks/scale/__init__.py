"""Scale benchmark: ``python -m benchmarks.scale --out reports`` (``make bench-scale``).

How each stage of a day's loop costs as the number of series grows, and where it stops. For each
number of series (``--series``, default 1,000 and 10,000 daily series of two years:
:mod:`harness.series`), in a home of its own (``.mlops/bench-scale/<N>``) with a throwaway
``redis-server`` as the online store and a throwaway PostgreSQL for the forecast table, the
platform's own steps run one after the other, each in a process of its own (:mod:`.stage`), the
function its DAG task calls: ingest, validation (Great Expectations), the feature build, Feast's
apply and materialization into Redis, the training set (Feast's point-in-time join), a per-series
statistical fit (``auto_ets`` by default, one model per series), a global model's fit
(``lightgbm``), a champion (a ``naive`` version trained, registered and promoted: what the next
stages forecast with), the batch forecast of every series into the forecast table, its scoring, the
drift monitor, and the service with every series in its online store under load (:mod:`.serving`:
p99 of one entity a request, for two entities and for entities drawn from all, and of batches of
100; its time is that of fixed loads, left out of the exponents). Each stage's wall time and its
process's peak resident memory (the stage process's own ``VmHWM``, not that of Ray's workers) are
measured; a stage that fails (out of memory, a timeout) is reported with its error, and the stages
that need its output are not run.

The growth exponent of each stage is the slope of log(wall time) over log(series) between the two
largest counts measured: 1 is linear, 2 quadratic. ``day_wall_s`` sums a count's stages of one day
of the loop (:data:`.stage.DAY_STAGES`: not the retraining's training set and fits).

The per-series fit also runs on Ray (``MLOPS_ENGINE=ray``): on a local cluster of one worker node
of one CPU, then of two (:mod:`harness.ray_cluster`, separate processes started with ``ray
start``), on ``--ray-series`` series; ``ray_speedup`` is the one-worker time over the two-worker
time, and the fitted bundles of the in-process, one-worker and two-worker fits must be the same
files (their digest is compared; a difference is reported).

Writes ``scale.json`` (``rows``: one per count and stage, with ``series``, ``stage``, ``wall_s``,
``peak_rss_mb``; ``exponents``; ``day_wall_s``; ``ray``; ``ray_speedup``), ``scale.md`` and
``scale.png`` (wall time per stage against the series, log-log).
"""
