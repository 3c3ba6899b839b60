"""Payment Provider Protocol routes: parse, call the service, serialise. Nothing else."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.http import authenticate, is_test_suite, path_id, read_model, services
from protocol.payments import (
    CancellationRequest,
    CreatePaymentRequest,
    InboundRequest,
    RefundRequest,
    SettlementRequest,
)


async def manifest(request: Request) -> Response:
    return JSONResponse(services(request).manifest.model_dump(by_alias=True, exclude_none=True))


async def payment_methods(request: Request) -> Response:
    """Deprecated by VTEX in 2023 but still called by older gateways; public like /manifest."""
    return JSONResponse({"paymentMethods": services(request).settings.payment_methods})


async def create_payment(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_model(request, CreatePaymentRequest)
    answer = await services(request).payments.authorize(
        merchant, body, test_suite=is_test_suite(request)
    )
    return JSONResponse(answer.model_dump(mode="json"))


async def settle(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_model(request, SettlementRequest)
    reply = await services(request).operations.settle(
        merchant, path_id(request, "payment_id"), body
    )
    return JSONResponse(reply.body, status_code=reply.http_status)


async def refund(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_model(request, RefundRequest)
    reply = await services(request).operations.refund(
        merchant, path_id(request, "payment_id"), body
    )
    return JSONResponse(reply.body, status_code=reply.http_status)


async def cancel(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_model(request, CancellationRequest)
    reply = await services(request).operations.cancel(
        merchant, path_id(request, "payment_id"), body
    )
    return JSONResponse(reply.body, status_code=reply.http_status)


async def inbound(request: Request) -> Response:
    merchant = await authenticate(request)
    body = await read_model(request, InboundRequest)
    answer = await services(request).outcomes.inbound(
        merchant, path_id(request, "payment_id"), path_id(request, "action"), body
    )
    return JSONResponse(answer.model_dump(mode="json"))


routes: list[BaseRoute] = [
    Route("/manifest", manifest, methods=["GET"]),
    Route("/payment-methods", payment_methods, methods=["GET"]),
    Route("/payments", create_payment, methods=["POST"]),
    Route("/payments/{payment_id}/settlements", settle, methods=["POST"]),
    Route("/payments/{payment_id}/refunds", refund, methods=["POST"]),
    Route("/payments/{payment_id}/cancellations", cancel, methods=["POST"]),
    # VTEX's Test Suite text spells it with one "l".
    Route("/payments/{payment_id}/cancelations", cancel, methods=["POST"]),
    Route("/payments/{payment_id}/inbound/{action}", inbound, methods=["POST"]),
    # The path's name until VTEX's spec renamed it in 2023; older gateways may still use it.
    Route("/payments/{payment_id}/inbound-request/{action}", inbound, methods=["POST"]),
]
