"""Liveness and readiness: live = the process answers; ready = model loaded and online store reachable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from model_serving.dependencies import get_runtime
from model_serving.runtime import ServingRuntime
from model_serving.schemas import Readiness

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live")
def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(runtime: Annotated[ServingRuntime, Depends(get_runtime)]) -> JSONResponse:
    problem = runtime.check()
    body = Readiness(
        ready=problem is None,
        model_name=runtime.settings.model_name(runtime.dataset.name),
        model_version=runtime.model.version if runtime.model else None,
        reason=problem,
    )
    return JSONResponse(body.model_dump(), status_code=200 if problem is None else 503)
