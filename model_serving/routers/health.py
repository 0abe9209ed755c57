"""Liveness and readiness: live = the process answers; ready = model loaded and online store reachable.

A readiness probe is often open to more than the platform's operators (a load balancer's health page,
a status dashboard): a service that is not ready says why in a stable reason with an error id, and the
cause goes to its log under that id."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from model_serving.dependencies import get_runtime
from model_serving.runtime import ServingRuntime
from model_serving.schemas import Readiness

router = APIRouter(prefix="/health", tags=["health"])
log = logging.getLogger(__name__)


@router.get("/live")
def live() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(runtime: Annotated[ServingRuntime, Depends(get_runtime)]) -> JSONResponse:
    problem = runtime.check()
    error_id = None
    if problem is not None and problem[1] is not None:  # still loading is no error
        error_id = uuid.uuid4().hex[:12]
        log.warning("not ready: %s (error id %s): %s", problem[0], error_id, problem[1])
    body = Readiness(
        ready=problem is None,
        model_name=runtime.settings.model_name(runtime.dataset.name),
        model_version=runtime.model.version if runtime.model else None,
        reason=problem[0] if problem else None,
        error_id=error_id,
    )
    return JSONResponse(body.model_dump(), status_code=200 if problem is None else 503)
