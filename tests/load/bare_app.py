"""The bare Starlette ceiling of `bench_mix.py`: one route answering a small JSON, nothing else.

Served by uvicorn with the same defaults and worker count as `connector serve`, and hit by the
same load generator, it shows what the framework, the server and the client can do on this
machine, so the connector's figures have something to be compared with:

    python -m uvicorn tests.load.bare_app:app --workers 2 --log-level warning
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PATH = "/ping"


async def ping(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route(PATH, ping, methods=["GET"])])
