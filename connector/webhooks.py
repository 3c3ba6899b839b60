"""The acquirer-side outcome webhook: the provider's core reports how a pending payment ended.

Authenticated by HMAC-SHA256 over `"{timestamp}.{raw body}"` with CONNECTOR_WEBHOOK_SECRET, sent
as `X-Connector-Timestamp` (Unix seconds) and `X-Connector-Signature: v1=<hex>`. A timestamp
outside the tolerance window is refused, so a captured request cannot be replayed later; within
it, a duplicate is harmless because a payment is decided once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Literal

from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.acquirers.base import AuthorizationOutcome, AuthorizationResult
from connector.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized
from connector.http import services
from connector.payments.states import PaymentState, wire_status


class OutcomeReport(BaseModel):
    idempotency_key: str = Field(alias="idempotencyKey", pattern=r"^pay-[0-9a-f]{32}$")
    status: Literal["approved", "denied"]
    authorization_id: str | None = Field(default=None, alias="authorizationId", max_length=64)
    nsu: str | None = Field(default=None, max_length=64)
    code: str | None = Field(default=None, max_length=64)
    message: str | None = Field(default=None, max_length=500)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, tolerance: int) -> None:
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        raise Unauthorized(
            "timestamp missing or outside the tolerance window", code="invalid-signature"
        )
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("signature does not match", code="invalid-signature")


async def outcome(request: Request) -> Response:
    found = services(request)
    secret = found.settings.webhook_secret
    if secret is None:
        raise NotFound("the outcome webhook is not enabled", code="webhook-disabled")
    body = await request.body()
    if len(body) > found.settings.max_body_bytes:
        raise PayloadTooLarge("request body too large")
    verify(
        secret.get_secret_value(),
        request.headers.get("x-connector-timestamp", ""),
        request.headers.get("x-connector-signature", ""),
        body,
        found.settings.webhook_tolerance_seconds,
    )
    try:
        report = OutcomeReport.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise BadRequest(f"invalid outcome report: {error}", code="invalid-request") from error
    payment = await found.outcomes.report(
        uuid.UUID(report.idempotency_key.removeprefix("pay-")),
        AuthorizationResult(
            AuthorizationOutcome(report.status),
            # An approval always carries an authorization id; the core may leave it to us.
            authorization_id=(report.authorization_id or f"AUT-{report.idempotency_key[4:16]}")
            if report.status == "approved"
            else None,
            nsu=report.nsu,
            code=report.code,
            message=report.message,
        ),
    )
    state = PaymentState(payment.status)
    return JSONResponse(
        {
            "paymentId": payment.payment_id,
            "state": state.value,
            "status": wire_status(state, was_approved=payment.authorization_id is not None),
        }
    )


routes: list[BaseRoute] = [Route("/outcome", outcome, methods=["POST"])]
