"""Gift Card Provider Protocol routes (the Gift Card Hub's calls): parse, call a service,
serialise. Mounted at `/giftcard`, which is the `serviceUrl` to register in the Hub.

What the Hub needs beyond the shapes (reference, B3 and B4): both credential headers checked on
every call, 401 when missing and 403 when wrong, both with an empty body (`connector.app` renders
them); any JSON media type accepted (`application/vnd.vtex.giftcards.v1+json` and older ones);
unknown headers and the `ts` cache-buster ignored; a trailing slash accepted; `REST-Range`
pagination answered with `REST-Content-Range`; nothing cached.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.db.tables import Merchant
from connector.errors import BadRequest, Forbidden, Unauthorized
from connector.http import one_route_per_path, path_id, read_model, services
from protocol.giftcards import (
    CreateCardRequest,
    CreateTransactionRequest,
    OperationRequest,
    SearchRequest,
)

_RANGE = re.compile(r"^\s*resources\s*=\s*(\d{1,9})\s*-\s*(\d{1,9})\s*$", re.IGNORECASE)
DEFAULT_PAGE = 50
NO_STORE = {"Cache-Control": "no-store"}


async def authenticate_hub(request: Request) -> Merchant:
    """The merchant whose credentials the Hub sends. Missing -> 401, wrong -> 403 (the Hub probes
    with wrong ones and cancels a provider's transactions if the probe succeeds)."""
    app_key = request.headers.get("x-provider-api-appkey", "").strip()
    app_token = request.headers.get("x-provider-api-apptoken", "").strip()
    if not app_key or not app_token:
        raise Unauthorized(
            "missing X-PROVIDER-API-AppKey/X-PROVIDER-API-AppToken", code="missing-credentials"
        )
    try:
        return await services(request).merchants.authenticate(app_key, app_token)
    except Unauthorized as error:
        raise Forbidden("invalid app key or app token", code="invalid-credentials") from error


def page(request: Request) -> tuple[int, int]:
    """(offset, limit) from `REST-Range: resources=0-49` (inclusive, VTEX's default)."""
    largest = services(request).settings.giftcard_max_page
    header = request.headers.get("rest-range")
    if not header:
        return 0, min(DEFAULT_PAGE, largest)
    match = _RANGE.match(header)
    if match is None or int(match[2]) < int(match[1]):
        raise BadRequest(
            "REST-Range must look like resources=0-49 (from <= to)", code="invalid-range"
        )
    start, end = int(match[1]), int(match[2])
    return start, min(end - start + 1, largest)


def content_range(offset: int, count: int, total: int) -> dict[str, str]:
    last = offset + max(count, 1) - 1
    return {"REST-Content-Range": f"resources {offset}-{last}/{total}"}


def base(request: Request) -> str:
    """Where this protocol is mounted, as seen by the caller (links are built on it)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _json(content: Any, headers: dict[str, str] | None = None) -> Response:
    if isinstance(content, BaseModel):
        content = content.model_dump(mode="json")
    elif isinstance(content, list):
        content = [item.model_dump(mode="json") for item in content]
    return JSONResponse(content, headers={**NO_STORE, **(headers or {})})


# ----------------------------------------------------------------------------- cards


async def search(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    body = await read_model(request, SearchRequest)
    offset, limit = page(request)
    cards, total = await services(request).giftcards.search(
        merchant, body, offset, limit, base(request)
    )
    return _json(cards, content_range(offset, len(cards), total))


async def create_card(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    body = await read_model(request, CreateCardRequest)
    return _json(await services(request).giftcards.create(merchant, body, base(request)))


async def get_card(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    card_id = path_id(request, "card_id")
    return _json(await services(request).giftcards.card(merchant, card_id, base(request)))


# ----------------------------------------------------------------------------- transactions


async def list_transactions(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    offset, limit = page(request)
    found, total = await services(request).ledger.transactions(
        merchant, path_id(request, "card_id"), offset, limit, base(request)
    )
    return _json(found, content_range(offset, len(found), total))


async def create_transaction(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    body = await read_model(request, CreateTransactionRequest)
    summary = await services(request).ledger.create_transaction(
        merchant, path_id(request, "card_id"), body, base(request)
    )
    return _json(summary)


async def get_transaction(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    detail = await services(request).ledger.transaction(
        merchant, path_id(request, "card_id"), path_id(request, "transaction_id"), base(request)
    )
    return _json(detail)


async def get_authorization(request: Request) -> Response:
    merchant = await authenticate_hub(request)
    record = await services(request).ledger.authorization(
        merchant, path_id(request, "card_id"), path_id(request, "transaction_id")
    )
    return _json(record)


def _operation_routes(
    kind: str,
) -> tuple[Callable[[Request], Awaitable[Response]], Callable[[Request], Awaitable[Response]]]:
    async def listing(request: Request) -> Response:
        merchant = await authenticate_hub(request)
        records = await services(request).ledger.operations(
            merchant, path_id(request, "card_id"), path_id(request, "transaction_id"), kind
        )
        return _json(records)

    async def create(request: Request) -> Response:
        merchant = await authenticate_hub(request)
        body = await read_model(request, OperationRequest)
        ledger = services(request).ledger
        operate = ledger.settle if kind == "settlement" else ledger.cancel
        record = await operate(
            merchant, path_id(request, "card_id"), path_id(request, "transaction_id"), body
        )
        return _json(record)

    return listing, create


list_settlements, settle = _operation_routes("settlement")
list_cancellations, cancel = _operation_routes("cancellation")

_TRANSACTION = "/giftcards/{card_id}/transactions/{transaction_id}"


def _with_trailing_slash(routes: list[Route]) -> list[BaseRoute]:
    """Each path also answers with a trailing slash (VTEX's example registers both), without a
    redirect the Hub would not follow; one route per path (`one_route_per_path`)."""
    doubled: list[Route] = []
    for route in routes:
        doubled.append(route)
        doubled.append(Route(route.path + "/", route.endpoint, methods=route.methods))
    return one_route_per_path(doubled)


routes: list[BaseRoute] = _with_trailing_slash(
    [
        # Before `/giftcards/{card_id}`, which would take `_search` for an id.
        Route("/giftcards/_search", search, methods=["POST"]),
        Route("/giftcards", create_card, methods=["POST"]),
        Route("/giftcards/{card_id}", get_card, methods=["GET"]),
        Route("/giftcards/{card_id}/transactions", list_transactions, methods=["GET"]),
        Route("/giftcards/{card_id}/transactions", create_transaction, methods=["POST"]),
        Route(_TRANSACTION, get_transaction, methods=["GET"]),
        Route(_TRANSACTION + "/authorization", get_authorization, methods=["GET"]),
        Route(_TRANSACTION + "/settlements", list_settlements, methods=["GET"]),
        Route(_TRANSACTION + "/settlements", settle, methods=["POST"]),
        Route(_TRANSACTION + "/cancellations", list_cancellations, methods=["GET"]),
        Route(_TRANSACTION + "/cancellations", cancel, methods=["POST"]),
    ]
)
