"""Serving latency benchmark: ``python -m benchmarks.serving --out reports``.

Four HTTP servers on this machine answer about the same entity, one after the other, under load at
fixed request rates from :mod:`benchmarks.loadgen` (a process of its own):

* the floor (:mod:`benchmarks.floor`): a bare uvicorn app that does the service's one Redis read and
  answers a fixed body: the least an answer costs here, which ours is reported against as a ratio;
* ours: ``POST /v1/forecast``: the online features from Redis, then the champion's forecast, each
  answer recorded in the forecast table by the ledger (as served by default);
* the ledger's cost: ours with the ledger on, ours with it off and a second copy with it off, all
  started together and loaded in short turns at the target rate (the order rotated every round), so
  a slow minute of the machine falls on all of them; each one's requests of all rounds pooled give
  its p99, the ledger's ratio is reported beside the two identical copies' (the measurement's noise);
* the bands' cost: ours serving the champion (its 80% and 95% bands on every step) and twice the
  same model registered without bands (a point-only version, as registered before bundles carried
  intervals), loaded in turns the same way: the bands' ratio beside the two point-only copies';
* ``feast serve``: ``POST /get-online-features`` of the same feature service, entity and Redis, so
  the fetch alone, through Feast's own feature server;
* ``mlflow models serve``: ``POST /invocations`` of the same registered bundle with the entity's
  feature row, so the prediction alone, through MLflow's scoring server.

Everything runs in a home of its own (``.mlops/bench-serving``) with a throwaway ``redis-server``:
the ETT data chain for one logical date, then an XGBoost model trained, gated and promoted to
champion. A home that already has a champion keeps it, so a second run only reloads the online store;
``--retrain`` trains anew (needed after a change to the training code, which each bundle copies).
Writes ``serving.json`` (one object per system and rate), ``serving.png`` (p99 per rate, one line
per system) and ``serving.md`` (the table, and the targets met or not); a missed target is reported,
never an error.

The benchmark's parts: :mod:`.plan` (the systems, rates and targets), :mod:`.servers` (the servers
and what they serve), :mod:`.measurement` (the runs under load and their rows), :mod:`.report` (the
targets met or not, and the markdown); ``python -m benchmarks.serving`` runs them
(:mod:`.__main__`).
"""
