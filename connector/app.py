"""The application factory and the lifespan that owns the engine, acquirers and services."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import yaml
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from connector import __version__, observability, webhooks
from connector.acquirers import sandbox_pages
from connector.acquirers.base import Acquirer, ObservedAcquirer
from connector.acquirers.http import HttpAcquirer
from connector.acquirers.sandbox import SandboxAcquirer
from connector.antifraud import admin as antifraud_admin
from connector.antifraud import routes as antifraud_routes
from connector.antifraud.service import AntifraudService, build_antifraud
from connector.db.engine import Database
from connector.db.migrate import SchemaState, current_revision, head_revision, schema_state
from connector.errors import ConnectorError, Unauthorized
from connector.giftcards import admin as giftcard_admin
from connector.giftcards import routes as giftcard_routes
from connector.giftcards.cards import GiftCardService, build_giftcards
from connector.giftcards.ledger import GiftCardLedger
from connector.merchants import MerchantService
from connector.observability import metrics
from connector.observability.middleware import ObservabilityMiddleware, route_templates
from connector.outbox.dispatcher import Dispatcher
from connector.payments import routes as payment_routes
from connector.payments.manifest import build_manifest
from connector.payments.operations import OperationService
from connector.payments.outcomes import Outcomes
from connector.payments.service import PaymentService
from connector.security import FieldCipher, same_secret
from connector.settings import Settings
from protocol.payments import ErrorBody, Manifest

log = logging.getLogger(__name__)

PAYMENT_PROVIDER_PREFIX = "/payment-provider"
GIFTCARD_PREFIX = "/giftcard"
ANTIFRAUD_PREFIX = "/antifraud"
ADMIN_PREFIX = "/admin"
# A readiness probe answers within this, even when the database hangs.
READY_TIMEOUT_SECONDS = 2.0


@dataclass
class Services:
    settings: Settings
    database: Database
    merchants: MerchantService
    payments: PaymentService
    operations: OperationService
    sandbox: SandboxAcquirer
    manifest: Manifest
    outcomes: Outcomes
    dispatcher: Dispatcher
    giftcards: GiftCardService
    ledger: GiftCardLedger
    antifraud: AntifraudService
    http: httpx.AsyncClient
    acquirer_http: httpx.AsyncClient

    async def close(self) -> None:
        await self.http.aclose()
        await self.acquirer_http.aclose()
        await self.database.dispose()


def build_services(settings: Settings) -> Services:
    database = Database(settings.database_url)
    sandbox = SandboxAcquirer(
        database,
        latency_seconds=settings.sandbox_latency_ms / 1000,
        failure_rate=settings.sandbox_failure_rate,
        async_decision_seconds=settings.sandbox_async_decision_seconds,
        public_base_url=settings.public_base_url,
        pix_key=settings.pix_key,
        payment_app_name=settings.payment_app_name,
    )
    acquirers: dict[str, Acquirer] = {"sandbox": sandbox}
    # The budget (connector.payments.common.Budget) cuts calls short; this is only a backstop.
    acquirer_http = httpx.AsyncClient(
        follow_redirects=False,
        timeout=httpx.Timeout(settings.acquirer_timeout_seconds, connect=5.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    if settings.acquirer == "http":
        assert settings.acquirer_url is not None and settings.acquirer_api_key is not None
        acquirers["http"] = HttpAcquirer(
            settings.acquirer_url,
            settings.acquirer_api_key,
            acquirer_http,
            user_agent=f"vtex-connector/{__version__}",
        )
    # Every call timed, by acquirer, operation and outcome (connector_acquirer_request_...).
    acquirers = {
        name: ObservedAcquirer(acquirer, metrics.observe_acquirer_call)
        for name, acquirer in acquirers.items()
    }
    cipher = FieldCipher(settings.encryption_keys)
    payments = PaymentService(database, settings, cipher, acquirers)
    giftcards, ledger = build_giftcards(database, settings, cipher)
    antifraud = build_antifraud(database, settings, cipher)
    # Callbacks never follow redirects: a redirect could lead off the allow-list.
    http = httpx.AsyncClient(follow_redirects=False, timeout=settings.callback_timeout_seconds)
    return Services(
        settings=settings,
        database=database,
        merchants=MerchantService(database, settings.credentials_cache_seconds),
        payments=payments,
        operations=OperationService(database, settings, acquirers),
        sandbox=sandbox,
        manifest=build_manifest(settings),
        outcomes=Outcomes(database, settings, payments),
        dispatcher=Dispatcher(database, settings, http),
        giftcards=giftcards,
        ledger=ledger,
        antifraud=antifraud,
        http=http,
        acquirer_http=acquirer_http,
    )


@asynccontextmanager
async def background_workers(services: Services) -> AsyncIterator[None]:
    """The callback dispatcher, the pending-payment reconciler, the gift card hold expiry and the
    anti-fraud deadlines, stopped on exit."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(services.dispatcher.run(stop), name="outbox-dispatcher"),
        asyncio.create_task(services.outcomes.run(stop), name="reconciler"),
        asyncio.create_task(services.ledger.run(stop), name="giftcard-hold-expiry"),
        asyncio.create_task(services.antifraud.run(stop), name="antifraud-deadlines"),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


class SchemaNotCurrent(RuntimeError):
    pass


# The newest migration this code ships: read from disk once, not at every readiness probe.
_head_revision = cache(head_revision)


async def check_schema(database: Database) -> None:
    # The read engine: on SQLite a probe must not take (or queue for) the write lock.
    current, head = await current_revision(database.read_engine), _head_revision()
    if current == head:
        return
    state = schema_state(current)
    if state is SchemaState.AHEAD:
        # A rollout migrated first and this older release still serves (schema_state's doc).
        log.warning("database schema %s is newer than this release's %s", current, head)
        return
    raise SchemaNotCurrent(
        f"database schema is at {current}, code expects {head}: run `connector migrate`"
    )


# ----------------------------------------------------------------------------- errors


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorBody(code=code, message=message).model_dump(), status_code=status)


async def _connector_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConnectorError)
    if isinstance(exc, Unauthorized) and request.url.path.startswith(GIFTCARD_PREFIX + "/"):
        # The Gift Card Hub requires 401 (missing) and 403 (wrong) with an empty body.
        return Response(status_code=exc.http_status, headers={"Cache-Control": "no-store"})
    if exc.http_status >= 500:
        log.error("%s %s failed: %r", request.method, request.url.path, exc)
    response = _error(exc.http_status, exc.code, exc.message)
    if request.url.path.startswith((GIFTCARD_PREFIX + "/", ANTIFRAUD_PREFIX + "/")):
        response.headers["Cache-Control"] = "no-store"  # as the protocols' answers
    return response


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    response = _error(exc.status_code, code, str(exc.detail))
    response.headers.update(exc.headers or {})  # keeps `Allow` on a 405
    return response


# VTEX's spec gives settlements, refunds and cancellations a 500 in their own shape.
_OPERATION_PATH = re.compile(
    r"/payments/(?P<payment_id>[^/]+)/(?P<kind>settlements|refunds|cancellations|cancelations)$"
)
_OPERATION_ID_FIELD = {"settlements": "settleId", "refunds": "refundId"}


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    message = "The request failed due to an internal error"
    operation = _OPERATION_PATH.search(request.url.path)
    if operation is None:
        return _error(500, "internal-error", message)
    id_field = _OPERATION_ID_FIELD.get(operation["kind"], "cancellationId")
    body: dict[str, Any] = {"paymentId": operation["payment_id"], id_field: None}
    if id_field != "cancellationId":
        body["value"] = 0
    # The body was not (fully) read; VTEX retries with its own requestId either way.
    body.update(code="internal-error", message=message, requestId="")
    return JSONResponse(body, status_code=500)


# ----------------------------------------------------------------------------- documents


@cache
def openapi_document() -> dict[str, Any]:
    for candidate in (
        Path(__file__).resolve().parents[1] / "openapi.yaml",
        Path(__file__).resolve().parent / "openapi.yaml",
    ):
        if candidate.exists():
            document: dict[str, Any] = yaml.safe_load(candidate.read_text())
            return document
    raise FileNotFoundError("openapi.yaml is not shipped with this installation")


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi_document())


async def openapi_yaml(request: Request) -> Response:
    text = yaml.safe_dump(openapi_document(), sort_keys=False, allow_unicode=True)
    return PlainTextResponse(text, media_type="application/yaml")


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """200 when the database answers and its schema is the code's; else 503 with the reason,
    within READY_TIMEOUT_SECONDS whatever the database does."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await check_schema(request.app.state.services.database)
    except TimeoutError:
        reason = f"the database did not answer within {READY_TIMEOUT_SECONDS:g} s"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    except Exception as error:  # any failure means "not ready", never a crash
        return JSONResponse({"status": "unavailable", "reason": str(error)}, status_code=503)
    return JSONResponse({"status": "ok"})


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus' text format: this process's (or every worker's) metrics and the database
    gauges; `Authorization: Bearer <CONNECTOR_METRICS_TOKEN>` when that is set."""
    services: Services = request.app.state.services
    expected = services.settings.metrics_token
    if expected is not None:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not same_secret(
            presented.strip(), expected.get_secret_value()
        ):
            raise Unauthorized(
                "missing or wrong metrics bearer token", code="invalid-metrics-token"
            )
    gauges = await metrics.read_database_gauges(services.database)
    return Response(metrics.exposition(gauges), media_type=metrics.CONTENT_TYPE)


# ----------------------------------------------------------------------------- factory


class ConnectorApp(Starlette):
    """Starlette with the observability middleware outermost, around Starlette's own error
    middleware: the 500 an unhandled error becomes is counted and logged, with the request id,
    like any other answer (middleware passed to Starlette would sit inside it)."""

    def build_middleware_stack(self) -> ASGIApp:
        inner = super().build_middleware_stack()
        return ObservabilityMiddleware(inner, route_templates(self.routes))


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    observability.configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = build_services(settings)
        try:
            await check_schema(services.database)
            app.state.services = services
            if settings.run_background_workers:
                async with background_workers(services):
                    yield
            else:
                yield
        finally:
            await services.close()

    return ConnectorApp(
        routes=[
            Mount(PAYMENT_PROVIDER_PREFIX, routes=payment_routes.routes),
            Mount(GIFTCARD_PREFIX, routes=giftcard_routes.routes),
            Mount(ANTIFRAUD_PREFIX, routes=antifraud_routes.routes),
            Mount(ADMIN_PREFIX, routes=giftcard_admin.routes + antifraud_admin.routes),
            Mount("/provider/webhooks", routes=webhooks.routes),
            Mount("/sandbox", routes=sandbox_pages.routes),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/openapi.yaml", openapi_yaml, methods=["GET"]),
            Route("/health/live", live, methods=["GET"]),
            Route("/health/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        exception_handlers={
            ConnectorError: _connector_error,
            HTTPException: _http_error,
            Exception: _unexpected_error,
        },
        lifespan=lifespan,
    )


def create_app_from_environment() -> Starlette:
    """Entry point for `uvicorn --factory` and `connector serve`."""
    return create_app(Settings())
