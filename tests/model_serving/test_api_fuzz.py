"""Schemathesis against the running service: whatever a client sends, no 5xx and a JSON error body.

The service runs as it is deployed (``python -m model_serving``, a real socket, a loaded champion).
Every operation of its OpenAPI schema gets generated valid and invalid requests, with and without the
admin token; schemathesis's own checks compare each answer with what the schema promises.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.schemas import OpenApiSchema

from core.dataset import DatasetConfig
from core.settings import PROJECT_ROOT, Settings
from tests.utils.platform import on_registry_copy
from tests.utils.servers import free_port, server_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_TOKEN = "fuzz-admin-token"
MAX_BATCH_ENTITIES = 5
# The service's own byte limit, derived from the batch limit (MLOPS_MAX_REQUEST_BYTES unset).
BODY_LIMIT = Settings(max_batch_entities=MAX_BATCH_ENTITIES, _env_file=None).request_body_limit  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def service(trained: tuple[Settings, DatasetConfig], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from core.settings import child_environment

    port = free_port()
    settings = on_registry_copy(trained[0], tmp_path_factory.mktemp("fuzz"))
    env = child_environment(
        settings,
        serving_port=port,
        admin_token=ADMIN_TOKEN,
        max_batch_entities=MAX_BATCH_ENTITIES,
    )
    base = f"http://127.0.0.1:{port}"
    with server_process([sys.executable, "-m", "model_serving"], port, timeout=180, env=env, cwd=PROJECT_ROOT):
        assert requests.get(f"{base}/health/ready", timeout=60).json()["ready"] is True
        yield base


@pytest.fixture(scope="module")
def api_schema(service: str) -> OpenApiSchema:
    # A body over the byte limit, or a batch over the entity limit, is refused with 413: a refusal
    # as good as 400 or 422 for schema-violating data.
    refusals = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422]
    # A body the schema allows is within the byte limit, however its ids are escaped (the limit is
    # derived from the schema's worst case): 413 is no acceptable answer to it. 404 is, to an id no
    # series has.
    acceptances = ["2xx", "3xx", 401, 403, 404, 409, 429, "5xx"]
    config = SchemathesisConfig.from_dict(
        {
            "checks": {
                "negative_data_rejection": {"expected-statuses": refusals},
                "positive_data_acceptance": {"expected-statuses": acceptances},
            }
        }
    )
    return schemathesis.openapi.from_url(f"{service}/openapi.json", config=config)


@schemathesis.check
def error_is_json_with_a_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx answer is JSON with a ``detail`` a person can read (a message, or a list of them)."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    assert content_type.startswith("application/json"), f"{response.status_code} answered as {content_type!r}"
    detail = response.json().get("detail")
    if isinstance(detail, list):
        assert detail, f"empty detail in {response.text!r}"
        assert all(isinstance(d, dict) and d.get("msg") for d in detail), f"unclear detail: {detail}"
    else:
        assert isinstance(detail, str), f"no message in {response.text!r}"
        assert detail.strip(), f"empty message in {response.text!r}"
    return True


FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("token", [None, ADMIN_TOKEN], ids=["anonymous", "admin"])
def test_no_generated_request_gets_a_server_error(
    api_schema: OpenApiSchema, mode: GenerationMode, token: str | None
) -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures: dict[str, str] = {}
    fuzzed: list[str] = []
    sent: dict[str, int] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert {op.path for op in operations} >= {"/v1/forecast", "/v1/forecast/batch", "/admin/reload"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @FUZZ
        def fuzz(case: Any) -> None:
            sent[case.operation.path] = sent.get(case.operation.path, 0) + 1
            case.call_and_validate(headers=headers, additional_checks=[error_is_json_with_a_message])

        name = f"{operation.method.upper()} {operation.path}"
        try:
            fuzz()
            fuzzed.append(name)
        except Unsatisfiable:
            # Negative mode only: nothing of this operation can be made invalid (no body, no parameters).
            assert mode is GenerationMode.NEGATIVE, name
        except Exception as exc:  # collect every operation's failure, then report them together
            failures[name] = str(exc)
    assert {"POST /v1/forecast", "POST /v1/forecast/batch"} <= set(fuzzed)
    assert sent["/v1/forecast"] >= 50, sent  # the generator did reach the server
    assert not failures, "\n\n".join(f"{name}:\n{text}" for name, text in failures.items())


def test_batches_over_the_limit_and_large_bodies_are_refused_with_json(service: str) -> None:
    too_many = [f"site_{i}" for i in range(MAX_BATCH_ENTITIES + 1)]
    answer = requests.post(f"{service}/v1/forecast/batch", json={"entity_ids": too_many}, timeout=30)
    assert answer.status_code == 413
    assert str(MAX_BATCH_ENTITIES) in answer.json()["detail"]
    large = {"entity_id": "x" * BODY_LIMIT}
    answer = requests.post(f"{service}/v1/forecast", json=large, timeout=30)
    assert answer.status_code == 413
    assert str(BODY_LIMIT) in answer.json()["detail"]
    refused = requests.get(f"{service}/openapi.json", timeout=30).json()["paths"]["/v1/forecast"]["post"]
    assert f"larger than {BODY_LIMIT} bytes" in refused["responses"]["413"]["description"]
    assert requests.post(f"{service}/v1/forecast", json={"entity_id": "site_0"}, timeout=30).status_code == 200
