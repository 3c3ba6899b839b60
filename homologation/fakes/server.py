"""What both fakes need to run: a real HTTP server in the current loop, a record of each request
they receive, and pauses that a test can cut short."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import uvicorn
from starlette.requests import Request
from starlette.types import ASGIApp


@dataclass(frozen=True)
class RecordedRequest:
    """A request as it travelled; `headers` are lower-cased. Test-only: it may hold card data."""

    method: str
    url: str
    headers: dict[str, str]
    body: str

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


async def record(request: Request) -> RecordedRequest:
    body = (await request.body()).decode("utf-8", errors="replace")
    return RecordedRequest(request.method, str(request.url), dict(request.headers), body)


@dataclass
class Pauses:
    """Sleeps that `release()` ends at once, so that a server holding an injected 30 s latency
    still stops in well under a second; the sleeper then carries on as if the time had passed."""

    _released: asyncio.Event = field(default_factory=asyncio.Event)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._released.wait(), seconds)
        except TimeoutError:
            pass

    def release(self) -> None:
        """Wakes every sleeper; later sleeps return at once until `rearm()`."""
        self._released.set()

    def rearm(self) -> None:
        self._released.clear()


@asynccontextmanager
async def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serves `app` until the block ends, yielding its base URL; `port=0` takes a free port.

    The socket is bound here, not by uvicorn, so that the port is known before the server starts
    and a port in use raises OSError instead of uvicorn's `sys.exit`, which would stop the loop.
    """
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only then (else 40 ms per keep-alive request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        bound_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            app,
            host=host,
            port=bound_port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                    raise RuntimeError("the server stopped before it started")
                await asyncio.sleep(0.01)
            yield f"http://{host}:{bound_port}"
        finally:
            server.should_exit = True
            await task
    finally:
        sock.close()
