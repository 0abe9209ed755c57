"""Limits of the forecasting API's requests that the settings must agree with.

The request schemas (``model_serving.schemas``) bound what a body may hold, and the service refuses
bodies over ``MLOPS_MAX_REQUEST_BYTES`` before reading them. The two must not disagree: a byte limit
below the largest body the schema allows would refuse (413) requests the published schema calls
valid. Both limits live here, in the base layer, so the settings can derive and check the byte
limit from the entity limit without importing the service.
"""

from __future__ import annotations

import functools
import json
from typing import Any

ENTITY_ID_MAX_CHARS = 256
"""Longest entity id (in characters, i.e. code points) the API accepts."""

# A character outside the Basic Multilingual Plane: JSON-escaped (``ensure_ascii``, the default of
# ``json.dumps`` and of ``requests``) it becomes a surrogate pair, ``\\ud800\\udc00``, 12 bytes: no
# character costs more in any standard encoding of a body (UTF-8 needs at most 4 bytes).
_COSTLIEST_CHAR = "\U00010000"


def worst_case_bodies(max_batch_entities: int) -> list[dict[str, Any]]:
    """The largest schema-valid body of each JSON route: ``/v1/forecast`` (one id) and
    ``/v1/forecast/batch`` (``max_batch_entities`` ids), every id of the costliest characters.

    Returned rather than only measured so that a test can check them against the request schemas:
    the field names here must be the schemas' own.
    """
    worst_id = _COSTLIEST_CHAR * ENTITY_ID_MAX_CHARS
    return [{"entity_id": worst_id}, {"entity_ids": [worst_id] * max_batch_entities}]


@functools.cache
def largest_request_bytes(max_batch_entities: int) -> int:
    """Bytes of the largest schema-valid request body, as ``json.dumps`` writes it by default.

    Measured by serializing the worst cases rather than from a formula, so that a change of the
    bodies or of the escaping cannot leave the figure behind. The default separators (``", "`` and
    ``": "``) and ``ensure_ascii`` are what ``requests`` and most clients send; an encoding with
    extra whitespace is not covered, and no finite limit could cover it.
    """
    return max(len(json.dumps(body).encode()) for body in worst_case_bodies(max_batch_entities))
