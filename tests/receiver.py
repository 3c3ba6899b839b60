"""A real HTTP callback receiver on loopback, for tests: records what arrives, fails on demand."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    at: float
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Receiver:
    base_url: str = ""
    received: list[Received] = field(default_factory=list)  # successful deliveries only
    attempts: int = 0
    fail_next: int = 0  # answer 500 to this many requests first
    delay_seconds: float = 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/callback") -> str:
        return f"{self.base_url}{path}"

    async def wait_for(self, count: int, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self.received)} of {count} callbacks arrived")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                pass
        return self.received


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()

    async def callback(request: Request) -> Response:
        receiver.attempts += 1
        if receiver.delay_seconds:
            await asyncio.sleep(receiver.delay_seconds)
            if await request.is_disconnected():
                return Response(status_code=499)  # the sender is gone and never saw an answer
        if receiver.fail_next > 0:
            receiver.fail_next -= 1
            return JSONResponse({"error": "try again"}, status_code=500)
        receiver.received.append(
            Received(
                time.monotonic(), str(request.url), dict(request.headers), await request.json()
            )
        )
        receiver.arrived.set()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/{path:path}", callback, methods=["POST"])])
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
