"""A request body size limit (FastAPI has none): larger bodies get 413 before any route reads them."""

from __future__ import annotations

import json
import time
from typing import Any

from model_serving.metrics import REQUEST_LATENCY

Scope = dict[str, Any]
Receive = Any
Send = Any


class BodySizeLimit:
    """ASGI middleware: checks ``Content-Length`` up front and counts the bytes of chunked bodies."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen, refused
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request" and not refused:
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer now and tell the app the client left: it stops reading, and whatever
                    # it tries to send afterwards is dropped below.
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class RequestLatency:
    """ASGI middleware: the latency histogram by route template, method and status.

    Plain ASGI rather than ``@app.middleware("http")``, whose request/response wrapping costs a
    sizeable share of a millisecond request.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        observed = False

        def observe() -> None:
            nonlocal observed
            observed = True
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_LATENCY.labels(route=route, method=scope["method"], status=str(status)).observe(
                time.perf_counter() - started
            )

        async def observed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # counted before the last byte leaves: a client that has its answer finds it in a scrape
                observe()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            if not observed:  # no answer sent (an error the server answers for us, a dropped connection)
                observe()
