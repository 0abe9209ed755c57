"""The serving benchmark's floor: the least a forecast over HTTP can cost on this machine.

A bare ASGI app under the same uvicorn as the service (one worker, no access log) that, per request,
reads the whole body, does the service's one Redis read (``HMGET`` of the entity's feature hash that
Feast materialized, the same key and fields) and answers a fixed JSON body the size of a forecast.
No framework, validation, batching, decoding or model: what remains is the HTTP server, the event
loop and the Redis round trip, which the service cannot go below.

    BENCH_FLOOR_CONFIG=floor.json python -m uvicorn benchmarks.floor:app --port 8001 --no-access-log

``floor.json`` (written by :func:`write_config`): Redis host and port, the key and hash fields (hex),
the body to answer; the Redis password comes in ``BENCH_FLOOR_REDIS_PASSWORD``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

CONFIG_ENV = "BENCH_FLOOR_CONFIG"
PASSWORD_ENV = "BENCH_FLOOR_REDIS_PASSWORD"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def write_config(path: Path, host: str, port: int, key: bytes, fields: list[bytes | str], body: bytes) -> Path:
    """``fields`` as Feast names them in its hashes: hashed feature names (bytes) and ``_ts:<view>`` (str)."""
    raw = [field.encode() if isinstance(field, str) else field for field in fields]
    config = {"host": host, "port": port, "key": key.hex(), "fields": [f.hex() for f in raw], "body": body.decode()}
    path.write_text(json.dumps(config))
    return path


class Floor:
    """The ASGI app: one Redis read and a fixed answer per request."""

    def __init__(self) -> None:
        self.client: Any = None
        self.key = b""
        self.fields: list[bytes] = []
        self.body = b""

    async def startup(self) -> None:
        import redis.asyncio

        config = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
        self.key = bytes.fromhex(config["key"])
        self.fields = [bytes.fromhex(f) for f in config["fields"]]
        self.body = config["body"].encode()
        self.client = redis.asyncio.Redis(
            host=config["host"], port=config["port"], password=os.environ.get(PASSWORD_ENV) or None
        )
        values = await self.client.hmget(self.key, self.fields)
        if values[-1] is None:  # Feast's event-time field: the key must hold materialized features
            raise RuntimeError("the floor's Redis key holds no features: materialize first")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self.startup()
                    except Exception as exc:  # uvicorn exits with the message instead of serving without Redis
                        await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if self.client is not None:
                        await self.client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        more = True
        while more:  # the whole request body, as the service reads it
            more = (await receive()).get("more_body", False)
        await self.client.hmget(self.key, self.fields)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


app = Floor()
