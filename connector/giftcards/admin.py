"""The operators' gift card routes, mounted under `/admin` (bearer token, `CONNECTOR_ADMIN_TOKEN`).

The same operations as `connector giftcards ...`; both call `GiftCardService`. An operator may
name themselves in `X-Operator`; it is written in the ledger next to what they did.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.errors import BadRequest
from connector.giftcards.cards import (
    card_as_json,
    issued_as_json,
    order_from,
    report_as_json,
)
from connector.http import (
    authenticate_operator,
    int_query,
    merchant_named,
    one_route_per_path,
    path_id,
    read_model,
    services,
)
from protocol.admin import CreditRequest, IssueCardRequest, IssueCardsRequest, StatusChangeRequest
from protocol.money import from_minor

STATUSES = ("active", "blocked")


async def list_cards(request: Request) -> Response:
    await authenticate_operator(request)
    name = request.query_params.get("merchant")
    merchant = await merchant_named(request, name) if name else None
    status = request.query_params.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest("status must be active or blocked", code="invalid-query")
    offset = int_query(request, "offset", 0, 0, 10**9)
    limit = int_query(request, "limit", 100, 0, 1000)
    cards = await services(request).giftcards.list(merchant, status, offset, limit)
    return JSONResponse([card_as_json(card) for card in cards])


async def issue_card(request: Request) -> Response:
    actor = await authenticate_operator(request)
    body = await read_model(request, IssueCardRequest)
    merchant = await merchant_named(request, body.merchant)
    issued = await services(request).giftcards.issue(merchant, order_from(body), actor=actor)
    return JSONResponse(issued_as_json(issued, merchant.name), status_code=201)


async def issue_cards(request: Request) -> Response:
    actor = await authenticate_operator(request)
    body = await read_model(request, IssueCardsRequest)
    merchant = await merchant_named(request, body.merchant)
    orders = [order_from(item) for item in body.cards]
    issued = await services(request).giftcards.issue_many(merchant, orders, actor)
    return JSONResponse([issued_as_json(card, merchant.name) for card in issued], status_code=201)


async def show_card(request: Request) -> Response:
    await authenticate_operator(request)
    report = await services(request).giftcards.report(path_id(request, "card_id"))
    return JSONResponse(report_as_json(report))


async def credit_card(request: Request) -> Response:
    actor = await authenticate_operator(request)
    body = await read_model(request, CreditRequest)
    card_id = path_id(request, "card_id")
    found = services(request).giftcards
    transaction = await found.credit(card_id, body.amount, body.request_id, actor, body.reason)
    card = (await found.report(card_id)).card
    return JSONResponse(
        {
            "transactionId": transaction.transaction_id,
            "requestId": transaction.request_id,
            "amount": float(from_minor(transaction.amount_minor, card.currency)),
            "card": card_as_json(card),
        },
        status_code=201,
    )


def _status_route(blocked: bool) -> Route:
    async def change(request: Request) -> Response:
        actor = await authenticate_operator(request)
        body = await read_model(request, StatusChangeRequest)
        card = await services(request).giftcards.set_blocked(
            path_id(request, "card_id"), blocked, actor, body.reason
        )
        return JSONResponse(card_as_json(card))

    verb = "block" if blocked else "unblock"
    return Route(f"/giftcards/{{card_id}}/{verb}", change, methods=["POST"])


routes: list[BaseRoute] = one_route_per_path(
    [
        Route("/giftcards", list_cards, methods=["GET"]),
        Route("/giftcards", issue_card, methods=["POST"]),
        Route("/giftcards/batch", issue_cards, methods=["POST"]),
        Route("/giftcards/{card_id}", show_card, methods=["GET"]),
        Route("/giftcards/{card_id}/credits", credit_card, methods=["POST"]),
        _status_route(True),
        _status_route(False),
    ]
)
