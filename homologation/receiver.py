"""The suite's stand-in for VTEX's side of callbacks and hooks.

A real HTTP server (uvicorn, in a thread) that accepts any POST under `/callbacks/{token}` and
records what arrived, when, with which headers: the scenario that handed out the token then
asserts on it. `--callback-listen` picks where it listens; `--callback-public-url` is the address
a remote deployment must call (a tunnel or a reachable host), when it differs from that.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PATH_PREFIX = "/callbacks/"


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when it arrived
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body_text: str

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.body_text)
        except ValueError:
            return None

    @property
    def url_tail(self) -> str:
        """Path and query as received, for comparing with the URL that was handed out."""
        return f"{self.path}?{self.query}" if self.query else self.path


@dataclass
class Receiver:
    public_url: str = ""
    arrivals: dict[str, list[Arrival]] = field(default_factory=dict)
    _condition: threading.Condition = field(default_factory=threading.Condition)

    def new_url(self, query: str = "") -> tuple[str, str]:
        """A fresh (token, URL) pair; the URL carries `query` as given."""
        token = secrets.token_hex(8)
        url = f"{self.public_url.rstrip('/')}{PATH_PREFIX}{token}"
        return token, f"{url}?{query}" if query else url

    def record(self, token: str, arrival: Arrival) -> None:
        with self._condition:
            self.arrivals.setdefault(token, []).append(arrival)
            self._condition.notify_all()

    def wait(self, token: str, timeout: float, count: int = 1) -> list[Arrival]:
        """The arrivals for `token` once there are `count` of them, or all there are at the
        deadline (fewer: the caller reports what is missing)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.arrivals.get(token, [])) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return list(self.arrivals.get(token, []))

    def received(self, token: str) -> list[Arrival]:
        with self._condition:
            return list(self.arrivals.get(token, []))

    def app(self) -> Starlette:
        async def accept(request: Request) -> Response:
            token = request.path_params["token"]
            self.record(
                token,
                Arrival(
                    at=time.monotonic(),
                    method=request.method,
                    path=request.url.path,
                    query=request.url.query,
                    headers=dict(request.headers),
                    body_text=(await request.body()).decode("utf-8", "replace"),
                ),
            )
            return JSONResponse({"received": True})

        return Starlette(routes=[Route(PATH_PREFIX + "{token}", accept, methods=["POST", "PUT"])])


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (port 0: any free port)."""
    host, _, port = value.rpartition(":")
    if not host or not port.isascii() or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@contextmanager
def running_receiver(listen: str, public_url: str | None = None) -> Iterator[Receiver]:
    """Serve a receiver on `listen` in a background thread until the block exits."""
    host, port = parse_listen(listen)
    receiver = Receiver()
    config = uvicorn.Config(
        receiver.app(), host=host, port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="callback-receiver", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the callback receiver could not listen on {listen}")
        time.sleep(0.02)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    receiver.public_url = public_url or f"http://{host}:{bound_port}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        thread.join(timeout=10)
