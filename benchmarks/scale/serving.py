"""The scale benchmark's ``serve`` stage: the forecasting service with every series of a count in its
online store (Redis), under load.

Three loads, one after the other, on one service (one worker), each after a warm-up:

* ``two_entities``: ``POST /v1/forecast`` at :data:`RATE` requests a second, the requests asking for
  two entities in turn: the service as a dataset of two series (ETT's) loads it, the peer of
* ``one_of_all``: the same rate, each request for an entity drawn at random from all of them, so
  that the store's size and the spread of the keys show in the latency;
* ``batch_100``: ``POST /v1/forecast/batch`` of :data:`BATCH` entities drawn at random, at
  :data:`BATCH_RATE` a second: one online read and one prediction for the hundred.

Each load is :mod:`benchmarks.loadgen` in a process of its own (an open loop: the requests leave on
schedule whatever the answers), its bodies from a file of JSON lines.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

RATE = 200
BATCH = 100
BATCH_RATE = 10
WARMUP_SECONDS = 3.0
# Bodies per load, sent in turn: enough that a run of 20 s at 200 a second repeats few.
DRAWS = 4000


def entities_served(settings: Any, dataset: Any, day: date) -> list[str]:
    """The entities with features on ``day``, the last day materialized: those the store holds."""
    import pandas as pd

    from core.windows import end_of
    from feature_store.features import features_since

    recent = features_since(settings, dataset, pd.Timestamp(end_of(day)) - pd.Timedelta(days=1))
    return sorted(set(recent[dataset.entity_column].astype(str)))


def bodies(entities: list[str], seed: int = 0) -> dict[str, tuple[str, int, list[str]]]:
    """Per load: (path, rate, bodies)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    two = [json.dumps({"entity_id": entities[n % min(2, len(entities))]}) for n in range(DRAWS)]
    one = [json.dumps({"entity_id": str(e)}) for e in rng.choice(entities, DRAWS)]
    size = min(BATCH, len(entities))
    batches = [
        json.dumps({"entity_ids": [str(e) for e in rng.choice(entities, size, replace=False)]})
        for _ in range(DRAWS // 10)
    ]
    return {
        "two_entities": ("/v1/forecast", RATE, two),
        "one_of_all": ("/v1/forecast", RATE, one),
        "batch_100": ("/v1/forecast/batch", BATCH_RATE, batches),
    }


def serve(settings: Any, dataset: Any, day: date, seconds: float, logs: Path) -> dict[str, Any]:
    """The three loads on the service of ``settings``: each one's p50, p99, errors and achieved rate."""
    from benchmarks.serving.measurement import load
    from benchmarks.serving.servers import our_service

    entities = entities_served(settings, dataset, day)
    logs.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"entities": len(entities)}
    with our_service(settings, 1, logs) as (base, _):
        for name, (path, rate, lines) in bodies(entities).items():
            file = logs / f"{name}.jsonl"
            file.write_text("\n".join(lines) + "\n")
            load(base + path, file, rate, WARMUP_SECONDS)
            result = load(base + path, file, rate, seconds)
            out[name] = {key: result[key] for key in ("p50_ms", "p99_ms", "errors", "requests", "achieved_rps")}
    return out
