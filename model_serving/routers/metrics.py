"""``/metrics`` in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from model_serving.dependencies import get_runtime
from model_serving.metrics import MODEL_READY, exposition
from model_serving.runtime import ServingRuntime

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(runtime: Annotated[ServingRuntime, Depends(get_runtime)]) -> Response:
    # Readiness as the runtime answering this scrape has it now, not as it was at its last load: the
    # gauge is the process's, and any other service started in the process since (a test's) set it too.
    MODEL_READY.set(1 if runtime.ready else 0)
    return Response(exposition(runtime.settings.serving_workers), media_type=CONTENT_TYPE_LATEST)
