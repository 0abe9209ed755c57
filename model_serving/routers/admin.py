"""``/admin``: state-changing routes and what only operators read (the serving version's registry tags),
behind the bearer token of ``MLOPS_ADMIN_TOKEN``."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.concurrency import run_in_threadpool

from model_serving.dependencies import get_model, get_runtime
from model_serving.runtime import ModelHandle, ServingRuntime
from model_serving.schemas import ErrorBody, ModelDetail, ReloadResult

router = APIRouter(prefix="/admin", tags=["admin"])


async def require_admin(
    runtime: Annotated[ServingRuntime, Depends(get_runtime)],
    authorization: Annotated[str | None, Header()] = None,
) -> ServingRuntime:
    """Admin routes exist only with a configured token, and answer only to it (compared in constant time)."""
    token = runtime.settings.admin_token
    if token is None:
        raise HTTPException(status_code=404, detail="admin routes are disabled: no admin token is configured")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise HTTPException(status_code=401, detail="a valid admin bearer token is required")
    return runtime


@router.post(
    "/reload",
    response_model=ReloadResult,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 500: {"model": ErrorBody}},
)
async def reload(runtime: Annotated[ServingRuntime, Depends(require_admin)]) -> ReloadResult:
    """Serve the champion now instead of at the next poll; a version that fails to load is reported
    and the current one keeps serving."""
    swapped = await run_in_threadpool(runtime.refresh_model)
    if runtime.last_reload_error:
        serving = runtime.model.version if runtime.model else "none"
        raise HTTPException(status_code=500, detail=f"{runtime.last_reload_error}; still serving version {serving}")
    assert runtime.model is not None
    return ReloadResult(swapped=swapped, version=runtime.model.version, loaded_at=runtime.model.loaded_at)


@router.get(
    "/model",
    response_model=ModelDetail,
    responses={401: {"model": ErrorBody}, 404: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def model_detail(
    _: Annotated[ServingRuntime, Depends(require_admin)], model: Annotated[ModelHandle, Depends(get_model)]
) -> ModelDetail:
    """The serving version with its registry tags (lineage, gate decisions, the paths of its data checks)."""
    return ModelDetail(name=model.name, version=model.version, loaded_at=model.loaded_at, tags=model.tags)
