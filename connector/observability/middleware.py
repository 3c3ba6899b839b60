"""One pure ASGI middleware around the whole app: a request id for every request, the HTTP
metrics, and one access log line per request.

It wraps Starlette's own error middleware (see `connector.app.ConnectorApp`), so the `500` that
an unhandled error turns into is counted, logged and carries the request id like any answer.
Labels use the route's template (`/payment-provider/payments/{paymentId}/settlements`), never the
path: paths carry ids (and the sandbox page's capability key), and every id would be a new time
series. The query string is never logged: callback URLs carry VTEX's signature.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable

from starlette.routing import BaseRoute, Host, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connector.observability import metrics
from connector.observability.logs import REQUEST_ID

access_log = logging.getLogger("connector.access")

UNMATCHED = "unmatched"
_REQUEST_ID_HEADER = b"x-request-id"
# A request id from the caller is kept when it is a sane token, else replaced by our own.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Probes and scrapes that succeed are not worth a log line each (they are still counted).
_QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics"})


def route_templates(routes: Iterable[BaseRoute], prefix: str = "") -> dict[int, str]:
    """The full template of every endpoint route, by `id()` of the route object that Starlette
    leaves in `scope["route"]` (a route inside a Mount: the mount's prefix joined with its path).
    A Mount that matched but none of whose routes did is missing: its request is unmatched."""
    templates: dict[int, str] = {}
    for route in routes:
        if isinstance(route, Mount):
            mount_prefix = prefix + route.path_format.removesuffix("/{path}")
            if route.routes:
                templates.update(route_templates(route.routes, mount_prefix))
            else:  # an ASGI app mounted whole: one template for all of it
                templates[id(route)] = mount_prefix or "/"
        elif isinstance(route, Host):
            templates.update(route_templates(route.routes, prefix))
        elif isinstance(route, Route | WebSocketRoute):
            path = prefix + route.path_format
            templates[id(route)] = path.rstrip("/") or "/"  # `/x/` and `/x`: one operation
    return templates


def _request_id(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == _REQUEST_ID_HEADER:
            if _SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, templates: dict[int, str]) -> None:
        self.app = app
        self._templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = REQUEST_ID.set(request_id)
        echoed = (_REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # what the client gets if the app fails before it answers
        started = time.perf_counter()

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: a response object's own header list is never changed.
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            seconds = time.perf_counter() - started
            route = self._templates.get(id(scope.get("route")), UNMATCHED)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            metrics.observe_request(method, route, status, seconds)
            if access_log.isEnabledFor(logging.INFO) and not (
                route in _QUIET_ROUTES and status < 400
            ):
                duration_ms = round(seconds * 1000, 1)
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    route,
                    status,
                    duration_ms,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": duration_ms,
                    },
                )
            REQUEST_ID.reset(token)
