"""A per-series (statistical) champion from training to answers: its bundle registers with each row's
entity, time and history in its signature, the promotion gate scores it on the holdout's histories,
and the service and the batch forecast answer from each series' history in the online store and the
feature table: the same forecast both ways."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.dataset import DatasetConfig
from core.settings import Settings
from model_registry.tracking import CHAMPION
from model_registry.tracking import client as registry_client
from model_serving.app import create_app
from tests.utils.data import SYNTHETIC_END
from tests.utils.platform import on_registry_copy

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# Each series both candidates, weighted by the inverse of their backtest errors on it.
SELECTION = {
    "candidates": ["seasonal_naive", "auto_theta"],
    "method": "combination",
    "top_k": 2,
    "combine": "weighted",
    "min_errors": 10,
}


@pytest.mark.parametrize(("family", "params"), [("auto_theta", None), ("selection", SELECTION)])
def test_a_statistical_champion_answers_from_each_series_history(
    tmp_path: Path,
    trained: tuple[Settings, DatasetConfig],
    family: str,
    params: dict[str, object] | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from model_bundle.outputs import history_input, time_input
    from model_registry.provenance import trusted_model
    from model_registry.registry import register_challenger
    from model_serving.batch import issue_day
    from model_training.train import train
    from model_validation.champion import evaluate_challenger, holdout_of

    settings = on_registry_copy(trained[0], tmp_path, forecast_db=f"sqlite:///{tmp_path / 'forecasts.db'}")
    dataset = trained[1]
    name = settings.model_name(dataset.name)
    outcome = train(settings, dataset, SYNTHETIC_END, family=family, params=params)
    version = str(register_challenger(settings, name, outcome.run_id).version)
    with trusted_model(settings, name, version) as model:
        schema = model.metadata.get_input_schema()
    assert (history_input(schema), time_input(schema)) == ("temp_history", "event_timestamp")

    decision = evaluate_challenger(settings, dataset, name, version, holdout_of(settings, dataset, SYNTHETIC_END))
    assert np.isfinite(decision.challenger_mae), decision
    assert decision.challenger_mae < 3 * decision.baseline_mae, decision  # a forecast of this data, not noise

    registry_client(settings).set_registered_model_alias(name, CHAMPION, version)
    from model_registry.__main__ import champion

    capsys.readouterr()
    assert champion(settings, name) == 0
    said = capsys.readouterr().out
    # What make demo prints of the champion: a selection's leaderboard, each candidate's MASE first.
    assert ("candidates (backtest MASE" in said) == (family == "selection"), said
    if family == "selection":
        assert "    seasonal_naive" in said, said
        assert "    auto_theta" in said, said
    with TestClient(create_app(settings)) as client:
        answers = {e: client.post("/v1/forecast", json={"entity_id": e}) for e in ("site_0", "site_1")}
        choice = client.get("/v1/model/choice").json()
    assert {e: a.status_code for e, a in answers.items()} == {"site_0": 200, "site_1": 200}
    issued = issue_day(settings, dataset, SYNTHETIC_END, dag_run_id="manual__per_series")
    assert issued.model_version == version
    from forecast_store import store

    stored = {(r.entity_id, r.step): r.value for r in store.issued(settings, dataset.name)}
    for entity, answer in answers.items():
        body = answer.json()
        assert body["model_version"] == version
        assert body["model_family"] == family
        if family == "selection":  # which candidates answered this series: the choice the API lists
            assert body["answered_by"], body
            assert set(body["answered_by"]) <= set(SELECTION["candidates"])  # type: ignore[arg-type]
            assert choice["series"][entity] == body["answered_by"], choice
            assert choice["combine"] == "weighted"
            assert len(choice["weights"][entity]) == 2
            assert sum(choice["weights"][entity]) == pytest.approx(1.0)
        else:
            assert body["answered_by"] is None
            assert choice == {
                "version": version,
                "family": family,
                "default": [family],
                "series": {},
                "combine": None,
                "default_weights": None,
                "weights": None,
            }
        online = [point["value"] for point in body["forecast"]]
        batch = [stored[(entity, step)] for step in range(1, dataset.horizon + 1)]
        np.testing.assert_allclose(online, batch, rtol=1e-9)
        assert body["forecast"][0]["intervals"], "conformal bands from the backtest's errors"
