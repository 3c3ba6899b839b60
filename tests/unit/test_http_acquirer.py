"""How the http acquirer maps every kind of answer: what is a refusal, what is unknown."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from connector.acquirers.base import (
    AuthorizationOutcome,
    AuthorizationRequest,
    CardData,
    Flow,
    OperationRequest,
)
from connector.acquirers.http import HttpAcquirer, reference_for
from connector.errors import AcquirerUnavailable

BASE = "https://core.example/acquirer/v1"
PROXY = "https://acme.vtexpayments.com.br/api/pvt/proxy"
KEY = "pay-0123456789abcdef0123456789abcdef"

Handler = Callable[[httpx.Request], httpx.Response]


def acquirer(handler: Handler) -> HttpAcquirer:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpAcquirer(BASE, SecretStr("secret"), client, user_agent="test")


def plain_card() -> CardData:
    return CardData("4444333322221111", "123", "12", "2030", "John Doe")


def token_card() -> CardData:
    return CardData(
        "#vtex#token#d799bae#number#",
        "#vtex#token#d799bae#csc#",
        "12",
        "2030",
        "#vtex#token#d799bae#holder#",
        tokenized=True,
        token_bin="444433",
    )


def authorization(card: CardData | None = None, proxy: str | None = None) -> AuthorizationRequest:
    return AuthorizationRequest(
        idempotency_key=KEY,
        amount_minor=3190,
        currency="BRL",
        payment_method="Visa",
        installments=1,
        card=card if card is not None else plain_card(),
        test_suite=False,
        flow=Flow.CARD,
        secure_proxy_url=proxy,
    )


def answer(status: int, body: object) -> Handler:
    return lambda request: httpx.Response(status, json=body)


def operation() -> OperationRequest:
    return OperationRequest(f"{KEY}:settlement:r1", KEY, 3190, "BRL")


async def test_a_plain_card_goes_to_the_core_with_the_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"reference": KEY, "status": "approved", "id": "AUT-1"})

    result = await acquirer(handler).authorize(authorization())
    assert result.outcome is AuthorizationOutcome.APPROVED and result.authorization_id == "AUT-1"
    [request] = seen
    assert str(request.url) == f"{BASE}/authorizations"
    assert request.headers["Api-Key"] == "secret"
    body = json.loads(request.content)
    assert body["reference"] == KEY and body["amount"] == 3190
    assert body["card"]["number"] == "4444333322221111" and body["card"]["expiryYear"] == "2030"


async def test_a_tokenized_card_goes_through_the_proxy_with_forward_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"reference": KEY, "status": "approved", "id": "AUT-1"})

    await acquirer(handler).authorize(authorization(token_card(), PROXY))
    [request] = seen
    assert str(request.url) == PROXY
    assert request.headers["X-PROVIDER-Forward-To"] == f"{BASE}/authorizations"
    assert request.headers["X-PROVIDER-Forward-Api-Key"] == "secret"
    assert "Api-Key" not in request.headers  # only the proxy's forwarded copy
    assert request.headers["Content-Type"] == "application/json"
    card = json.loads(request.content)["card"]
    assert card["number"] == "#vtex#token#d799bae#number#"
    assert card["csc"] == "#vtex#token#d799bae#csc#"


async def test_a_tokenized_card_without_a_proxy_is_never_sent() -> None:
    with pytest.raises(ValueError, match="secureProxyUrl"):
        await acquirer(answer(500, {})).authorize(authorization(token_card(), None))


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (422, {"code": "insufficient-funds", "message": "No money"}, "insufficient-funds"),
        (404, {"code": "no-such-merchant", "message": "Unknown"}, "no-such-merchant"),
        (400, "not json", "acquirer-http-400"),
    ],
)
async def test_a_4xx_from_the_core_is_a_denial(status: int, body: object, code: str) -> None:
    result = await acquirer(answer(status, body)).authorize(authorization())
    assert result.outcome is AuthorizationOutcome.DENIED and result.code == code


@pytest.mark.parametrize(("status", "code"), [(400, "secure-proxy-400"), (403, "secure-proxy-403")])
async def test_the_proxys_own_refusals_are_clear_denials(status: int, code: str) -> None:
    result = await acquirer(answer(status, {"error": "nope"})).authorize(
        authorization(token_card(), PROXY)
    )
    assert result.outcome is AuthorizationOutcome.DENIED and result.code == code
    assert result.message and "Secure Proxy" in result.message


async def test_the_cores_own_403_through_the_proxy_is_a_configuration_error_not_a_denial() -> None:
    body = {"code": "forbidden", "message": "Wrong key"}
    with pytest.raises(AcquirerUnavailable):
        await acquirer(answer(403, body)).authorize(authorization(token_card(), PROXY))


async def test_long_ids_and_messages_are_cut_to_what_the_database_keeps() -> None:
    body = {"reference": KEY, "status": "approved", "id": "A" * 300, "message": "m" * 900}
    result = await acquirer(answer(200, body)).authorize(authorization())
    assert result.authorization_id == "A" * 64 and result.message == "m" * 500
    refused = await acquirer(answer(422, {"code": "c" * 100, "message": "no"})).capture(operation())
    assert refused.code == "c" * 64


async def test_the_cores_refusal_relayed_by_the_proxy_keeps_its_code() -> None:
    body = {"code": "invalid-card-number", "message": "Bad number"}
    result = await acquirer(answer(422, body)).authorize(authorization(token_card(), PROXY))
    assert result.code == "invalid-card-number"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 401, 403, 408, 409, 425, 429, 302])
async def test_server_errors_and_retryable_statuses_leave_the_outcome_unknown(
    status: int,
) -> None:
    with pytest.raises(AcquirerUnavailable):
        await acquirer(answer(status, {"code": "x", "message": "y"})).authorize(authorization())


async def test_an_unreadable_success_leaves_the_outcome_unknown() -> None:
    with pytest.raises(AcquirerUnavailable, match="unreadable"):
        await acquirer(answer(200, {"status": "maybe"})).authorize(authorization())


async def test_a_connection_error_leaves_the_outcome_unknown() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(AcquirerUnavailable):
        await acquirer(handler).authorize(authorization())


async def test_a_pending_answer_carries_its_instrument() -> None:
    body = {
        "reference": KEY,
        "status": "pending",
        "instrument": {"paymentUrl": "https://core.example/pay/1", "redirectUrl": None},
    }
    result = await acquirer(answer(200, body)).authorize(authorization())
    assert result.outcome is AuthorizationOutcome.PENDING
    assert result.instrument == {"paymentUrl": "https://core.example/pay/1"}
    assert result.authorization_id is None


async def test_query_reads_never_seen_only_from_the_apis_own_404() -> None:
    not_found = {"code": "authorization-not-found", "message": "unknown"}
    assert await acquirer(answer(404, not_found)).query(KEY) is None
    with pytest.raises(AcquirerUnavailable):  # a wrong base URL is an outage, not "never seen"
        await acquirer(answer(404, {"detail": "Not Found"})).query(KEY)
    found = await acquirer(answer(200, {"reference": KEY, "status": "denied"})).query(KEY)
    assert found is not None and found.outcome is AuthorizationOutcome.DENIED


async def test_operations_map_success_refusal_and_unknown() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"reference": "x", "status": "succeeded", "amount": 3190, "id": "CAP-1"}
        )

    result = await acquirer(handler).capture(operation())
    assert result.succeeded and result.reference == "CAP-1"
    assert str(seen[0].url) == f"{BASE}/authorizations/{KEY}/captures"
    assert json.loads(seen[0].content) == {"reference": f"{KEY}:settlement:r1", "amount": 3190}

    refused = await acquirer(
        answer(200, {"reference": "x", "status": "refused", "amount": 0, "code": "voided"})
    ).refund(operation())
    assert not refused.succeeded and refused.code == "voided"
    missing = await acquirer(
        answer(404, {"code": "authorization-not-found", "message": "unknown"})
    ).void(operation())
    assert not missing.succeeded and missing.code == "authorization-not-found"
    with pytest.raises(AcquirerUnavailable):
        await acquirer(answer(503, {"code": "busy", "message": "later"})).capture(operation())


async def test_query_operation() -> None:
    not_found = {"code": "operation-not-found", "message": "unknown"}
    assert await acquirer(answer(404, not_found)).query_operation("k") is None
    done = await acquirer(
        answer(200, {"reference": "k", "status": "succeeded", "amount": 1, "id": "REF-1"})
    ).query_operation("k")
    assert done is not None and done.succeeded and done.reference == "REF-1"


async def test_inbound_relays_the_reply_and_its_outcome() -> None:
    reply = {
        "statusCode": 202,
        "contentType": "application/json",
        "content": '{"ok":true}',
        "authorization": {"reference": KEY, "status": "approved", "id": "AUT-9"},
    }
    answered = await acquirer(answer(200, reply)).inbound("decide", KEY, "{}")
    assert answered is not None and answered.status_code == 202
    assert answered.outcome is not None and answered.outcome.authorization_id == "AUT-9"
    unknown = {"code": "unknown-action", "message": "no such action"}
    assert await acquirer(answer(404, unknown)).inbound("nope", KEY, "") is None


def test_references_fit_the_api_pattern_and_are_stable() -> None:
    assert reference_for(KEY) == KEY
    odd = f"{KEY}:settlement:req/with spaces?"
    assert reference_for(odd) == reference_for(odd) != odd
    assert reference_for(odd).startswith(f"{KEY}:")
