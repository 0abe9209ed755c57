"""Request dependencies: routes get the loaded runtime instead of reaching for globals.

They are ``async`` although they never wait: FastAPI runs a plain ``def`` dependency on its thread
pool, a thread hop per request that costs more than the check itself.
"""

from __future__ import annotations

import logging
import uuid

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from model_serving.batching import RequestBatcher
from model_serving.metrics import ERRORS
from model_serving.runtime import ModelHandle, ServingRuntime
from model_serving.schemas import Answer

ForecastBatcher = RequestBatcher[list[Answer]]

log = logging.getLogger(__name__)


class Unavailable(HTTPException):
    """A 503 that tells the client what is unavailable in a stable message and gives an error id; the
    cause (an exception's text, with hosts, paths and versions) goes to the log under that id only."""

    def __init__(self, message: str, cause: object) -> None:
        self.error_id = uuid.uuid4().hex[:12]
        log.warning("%s (error id %s): %s", message, self.error_id, cause)
        super().__init__(status_code=503, detail=message)


async def unavailable_answer(_: Request, exc: Exception) -> JSONResponse:
    """The app's handler of :class:`Unavailable`: its message and error id, nothing of the cause."""
    assert isinstance(exc, Unavailable)
    return JSONResponse({"detail": exc.detail, "error_id": exc.error_id}, status_code=503)


def _runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


def _ready(request: Request) -> ServingRuntime:
    runtime = _runtime(request)
    if not runtime.ready:
        ERRORS.labels(reason="not_ready").inc()
        raise Unavailable("service not ready", runtime.error or "loading")
    return runtime


async def get_runtime(request: Request) -> ServingRuntime:
    return _runtime(request)


async def get_model(request: Request) -> ModelHandle:
    """The model serving now, taken once so a request never mixes two versions."""
    runtime = _runtime(request)
    model = runtime.model
    if model is None:
        ERRORS.labels(reason="not_ready").inc()
        raise Unavailable("no model loaded", runtime.error or "loading")
    return model


async def get_ready_batcher(request: Request) -> ForecastBatcher:
    """The forecast batcher, once the service is ready (503 before)."""
    _ready(request)
    batcher: ForecastBatcher = request.app.state.batcher
    return batcher
