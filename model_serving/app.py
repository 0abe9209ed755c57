"""The forecasting service: FastAPI app factory; its lifespan loads model and store, then follows the champion."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from core.dataset import DatasetConfig
from core.settings import Settings, get_settings
from model_registry import tracking
from model_serving.batching import RequestBatcher
from model_serving.dependencies import Unavailable, unavailable_answer
from model_serving.forecasting import forecast_requests
from model_serving.ledger import ForecastLedger
from model_serving.limits import BodySizeLimit, RequestLatency
from model_serving.metrics import MODEL_READY
from model_serving.routers import admin, forecast, forecasts, health, metrics, model
from model_serving.runtime import ServingRuntime, freeze_loaded
from model_serving.schemas import body_too_large_description

log = logging.getLogger(__name__)

RETRY_INITIAL_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


async def _load_until_ready(runtime: ServingRuntime) -> None:
    """Load at startup; if the registry or store is not there yet, retry with backoff."""
    delay = RETRY_INITIAL_SECONDS
    while True:
        await run_in_threadpool(runtime.load)
        MODEL_READY.set(1 if runtime.ready else 0)
        if runtime.ready:
            freeze_loaded()
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_SECONDS)


async def _follow_champion(runtime: ServingRuntime, interval: float) -> None:
    """Check the champion alias every ``interval`` seconds, so promotions and rollbacks need no restart."""
    while True:
        await asyncio.sleep(interval)
        if runtime.model is None:
            continue  # the startup load (or its retry) loads the first model
        try:
            await run_in_threadpool(runtime.refresh_model)
        except Exception:  # e.g. the registry is unreachable: try again next time, never stop watching
            log.exception("cannot check the champion alias")


def _state_limits_in_schema(app: FastAPI, settings: Settings) -> None:
    """The batch and body limits are settings, not constants of the request models: the published
    schema states the configured ones, so clients (and schema-driven tests) know them."""
    generate = app.openapi
    too_large = body_too_large_description(settings.request_body_limit, settings.max_batch_entities)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            batch = schema["components"]["schemas"]["BatchForecastRequest"]["properties"]["entity_ids"]
            batch["maxItems"] = settings.max_batch_entities
            for operations in schema["paths"].values():
                for operation in operations.values():
                    refused = operation.get("responses", {}).get("413")
                    if refused is not None:
                        refused["description"] = too_large
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    dataset = DatasetConfig.from_yaml(settings.dataset_config)
    # MLflow's client retries a dead registry for minutes by default; the service has its own backoff.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(settings.registry_request_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.registry_request_timeout_seconds)))
    # Once, here: the champion poll then reads the registry through side-effect-free clients.
    tracking.configure(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ledger = ForecastLedger(settings, dataset.name, dataset.frequency).start() if settings.forecast_ledger else None
        runtime = ServingRuntime(settings=settings, dataset=dataset, ledger=ledger)
        app.state.runtime = runtime
        batcher = RequestBatcher(functools.partial(forecast_requests, runtime), settings.max_batch_entities)
        app.state.batcher = batcher
        await run_in_threadpool(runtime.load)
        MODEL_READY.set(1 if runtime.ready else 0)
        if runtime.ready:
            freeze_loaded()
        tasks = [] if runtime.ready else [asyncio.create_task(_load_until_ready(runtime))]
        if settings.model_poll_seconds > 0:
            tasks.append(asyncio.create_task(_follow_champion(runtime, settings.model_poll_seconds)))
        try:
            yield
        finally:  # an app that ends by an error closes all the same
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            batcher.close()
            gc.unfreeze()  # an app that ends in a longer-lived process leaves it its garbage collection
            if ledger is not None:
                await run_in_threadpool(ledger.close)  # what was answered is written before the process ends
            runtime.close()

    app = FastAPI(
        title="Forecast service",
        description=f"Forecasts of {dataset.target} for the {dataset.name} dataset, from the champion model.",
        version="1",
        lifespan=lifespan,
    )

    _state_limits_in_schema(app, settings)
    app.add_exception_handler(Unavailable, unavailable_answer)
    app.add_middleware(BodySizeLimit, max_bytes=settings.request_body_limit)
    app.add_middleware(RequestLatency)  # outermost: a refused body is counted too
    app.include_router(health.router)
    app.include_router(forecast.router)
    app.include_router(forecasts.router)
    app.include_router(model.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    return app
