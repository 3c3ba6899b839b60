"""The sandbox's payment page: where a shopper sent by a redirect, a payment app or a bank
invoice link approves or declines, as they would at a real bank or wallet. Its URL carries the
payment's idempotency key, an unguessable capability (a random UUID)."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from connector.db.tables import Payment
from connector.errors import BadRequest, NotFound
from connector.http import one_route_per_path, services
from connector.payments.repository import PaymentRepository
from protocol import money

_KEY = re.compile(r"^pay-[0-9a-f]{32}$")

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox payment</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;}}
button{{font-size:1.1rem;padding:.6rem 1.2rem;margin-right:1rem;}}</style></head>
<body><h1>Sandbox payment</h1>
<p>Order {order}: <strong>{amount} {currency}</strong> ({method}).</p>
<p>{state}</p>
<form method="post"><button name="decision" value="approve">Pay</button>
<button name="decision" value="deny">Decline</button></form>
</body></html>"""


def _key(request: Request) -> str:
    key: str = request.path_params["key"]
    if not _KEY.match(key):
        raise NotFound("no such payment page", code="payment-not-found")
    return key


async def _payment(request: Request, key: str) -> Payment:
    async with services(request).database.reader() as session:
        payment = await PaymentRepository(session).by_pk(uuid.UUID(key.removeprefix("pay-")))
    if payment is None:
        raise NotFound("no such payment page", code="payment-not-found")
    return payment


async def show(request: Request) -> Response:
    payment = await _payment(request, _key(request))
    return HTMLResponse(
        _PAGE.format(
            order=html.escape(payment.order_id or payment.payment_id),
            amount=money.from_minor(payment.amount_minor, payment.currency),
            currency=html.escape(payment.currency),
            method=html.escape(payment.payment_method or "payment"),
            state="Waiting for your decision."
            if payment.status == "pending"
            else f"This payment is {html.escape(payment.status)}.",
        )
    )


async def decide(request: Request) -> Response:
    key = _key(request)
    form = parse_qs((await request.body()).decode(errors="replace"))
    decision = (form.get("decision") or [request.query_params.get("decision", "")])[0]
    if decision not in ("approve", "deny"):
        raise BadRequest("decision must be approve or deny", code="invalid-request")
    payment = await _payment(request, key)
    found = services(request)
    result = await found.sandbox.complete(key, approved=decision == "approve")
    if result is not None:
        payment = await found.outcomes.report(payment.id, result)
    if payment.return_url:
        # Back to the store; the outcome reaches VTEX by callback.
        return RedirectResponse(payment.return_url, status_code=303)
    return await show(request)


routes: list[BaseRoute] = one_route_per_path(
    [
        Route("/pay/{key}", show, methods=["GET"]),
        Route("/pay/{key}", decide, methods=["POST"]),
    ]
)
