"""Request dependencies: routes get the loaded runtime instead of reaching for globals."""

from __future__ import annotations

from fastapi import HTTPException, Request

from model_serving.metrics import ERRORS
from model_serving.runtime import ModelHandle, ServingRuntime


def get_runtime(request: Request) -> ServingRuntime:
    runtime: ServingRuntime = request.app.state.runtime
    return runtime


def get_ready_runtime(request: Request) -> ServingRuntime:
    runtime = get_runtime(request)
    if not runtime.ready:
        ERRORS.labels(reason="not_ready").inc()
        raise HTTPException(status_code=503, detail=f"service not ready: {runtime.error or 'loading'}")
    return runtime


def get_model(request: Request) -> ModelHandle:
    """The model serving now, taken once so a request never mixes two versions."""
    runtime = get_runtime(request)
    model = runtime.model
    if model is None:
        ERRORS.labels(reason="not_ready").inc()
        raise HTTPException(status_code=503, detail=f"no model loaded: {runtime.error or 'loading'}")
    return model
