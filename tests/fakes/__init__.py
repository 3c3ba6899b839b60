"""Tests of the fakes in `homologation.fakes`, each served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass
class Swappable:
    """An ASGI app that delegates to whichever app a test installs: one server per module and a
    fresh fake per test, since each uvicorn server takes about 0.2 s to stop."""

    app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.app is not None, "no fake installed"
        await self.app(scope, receive, send)


async def eventually(condition: Callable[[], bool], seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
