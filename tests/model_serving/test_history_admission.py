"""A per-series model's entity is served only where its history is at its features' time: a forecast
from another origin would carry the wrong timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pandas as pd

from model_serving.forecasting import Admitted, StaleFeaturesError, admit
from model_serving.online_features import OnlineRows

NOW = datetime(2024, 4, 1, 12, tzinfo=UTC)
RUNTIME = SimpleNamespace(
    dataset=SimpleNamespace(feature_engineering=SimpleNamespace(ttl=timedelta(days=2))),
    settings=SimpleNamespace(stale_features="refuse"),
)


def rows(histories: list[np.ndarray | None] | None, history_times: list[datetime | None] | None) -> OnlineRows:
    features = pd.DataFrame({"temp_lag_0": [1.0, 2.0, 3.0]})
    return OnlineRows(["a", "b", "c"], features, [NOW - timedelta(hours=1)] * 3, histories, history_times)


def test_an_entity_whose_history_is_missing_or_at_another_time_is_refused() -> None:
    at = NOW - timedelta(hours=1)
    read = rows([np.ones(4), None, np.ones(4)], [at, None, at - timedelta(hours=1)])
    admitted = admit(RUNTIME, [["a"], ["b"], ["c"]], read, NOW)  # type: ignore[arg-type]
    assert isinstance(admitted[0], list)
    assert [e.entity_id for e in admitted[0] if isinstance(e, Admitted)] == ["a"]
    for refused, entity in zip(admitted[1:], "bc", strict=True):
        assert isinstance(refused, StaleFeaturesError)
        assert f"no history of {entity} at its features' time" in str(refused)


def test_a_model_of_feature_rows_alone_never_asks_for_histories() -> None:
    admitted = admit(RUNTIME, [["a", "b", "c"]], rows(None, None), NOW)  # type: ignore[arg-type]
    assert isinstance(admitted[0], list)
    assert len(admitted[0]) == 3
