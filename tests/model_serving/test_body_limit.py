"""The body size limit and the request schemas agree: every body the schema allows passes the limit.

No model and no server: the real request models behind the real ``BodySizeLimit``, at the limit the
settings resolve. ``test_serving.py`` sends the same body through the whole app.
"""

import json

from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.api_limits import ENTITY_ID_MAX_CHARS, worst_case_bodies
from core.settings import Settings
from model_serving.limits import BodySizeLimit
from model_serving.schemas import BatchForecastRequest, ForecastRequest

MAX_BATCH_ENTITIES = 5
JSON = {"content-type": "application/json"}


def _app(limit: int) -> FastAPI:
    """The forecast routes' request models, answering how many ids they read, behind the body limit."""
    app = FastAPI()

    @app.post("/v1/forecast")
    def single(body: ForecastRequest) -> dict[str, int]:
        return {"ids": 1}

    @app.post("/v1/forecast/batch")
    def batch(body: BatchForecastRequest) -> dict[str, int]:
        return {"ids": len(body.entity_ids)}

    app.add_middleware(BodySizeLimit, max_bytes=limit)
    return app


def _worst_batch() -> bytes:
    """Distinct ids of the longest length, every character outside the BMP, as ``requests`` sends
    them (``json.dumps`` defaults: ``ensure_ascii``, ``", "`` separators): 12 bytes a character."""
    ids = [chr(0x10000 + i) * ENTITY_ID_MAX_CHARS for i in range(MAX_BATCH_ENTITIES)]
    return json.dumps({"entity_ids": ids}).encode()


def test_the_worst_case_bodies_are_valid_requests() -> None:
    single, batch = worst_case_bodies(MAX_BATCH_ENTITIES)
    assert ForecastRequest.model_validate(single).entity_id == single["entity_id"]
    assert len(BatchForecastRequest.model_validate(batch).entity_ids) == MAX_BATCH_ENTITIES
    ids = json.loads(_worst_batch())["entity_ids"]
    assert len(BatchForecastRequest.model_validate({"entity_ids": ids}).entity_ids) == MAX_BATCH_ENTITIES


def test_the_largest_valid_batch_passes_the_derived_limit_and_one_byte_more_does_not() -> None:
    settings = Settings(max_batch_entities=MAX_BATCH_ENTITIES, _env_file=None)  # type: ignore[call-arg]
    body = _worst_batch()
    assert len(body) == settings.request_body_limit  # the limit is the worst case, to the byte
    with TestClient(_app(settings.request_body_limit)) as client:
        accepted = client.post("/v1/forecast/batch", content=body, headers=JSON)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"ids": MAX_BATCH_ENTITIES}
        single = json.dumps({"entity_id": chr(0x10000) * ENTITY_ID_MAX_CHARS}).encode()
        assert client.post("/v1/forecast", content=single, headers=JSON).status_code == 200
        # Streamed (no Content-Length): the counted bytes are held to the same limit.
        streamed = client.post("/v1/forecast/batch", content=iter([body[:100], body[100:]]), headers=JSON)
        assert streamed.status_code == 200, streamed.text
        over = client.post("/v1/forecast/batch", content=body + b" ", headers=JSON)  # whitespace: still valid JSON
        assert over.status_code == 413
        assert over.json() == {"detail": f"request body larger than {settings.request_body_limit} bytes"}
