"""The Anti-fraud Provider Protocol over HTTP, as VTEX's gateway calls it: the manifest, analyses
decided by the merchant's rules, status reads from the database, updates, stops, pre-analysis,
idempotent repeats, credentials, and bad input that changes nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import AntifraudAnalysis
from tests.antifraud.conftest import SUITE, order, provider_headers, suite_id
from tests.conftest import MerchantCredentials

pytestmark = pytest.mark.anyio

REVIEW_LARGE_ORDERS = """
thresholds: {review: 50, deny: 90}
rules:
  - {name: large, kind: amount, above: 1000, score: 60}
  - {name: huge, kind: amount, above: 5000, score: 40}
  - {name: banned, kind: blocklist, field: email, values: [fraud@example.com]}
"""


async def analyses(services: Services) -> int:
    async with services.database.reader() as session:
        return int(await session.scalar(select(func.count()).select_from(AntifraudAnalysis)) or 0)


async def load_rules(services: Services, merchant: MerchantCredentials, source: str) -> None:
    found = await services.merchants.by_name(merchant.name)
    assert found is not None
    await services.antifraud.rulebook.load(found.id, source, "test")


async def post(
    client: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    response = await client.post("/transactions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    answer: dict[str, Any] = response.json()
    return answer


# ----------------------------------------------------------------------------- manifest


async def test_manifest_is_public(antifraud: httpx.AsyncClient) -> None:
    response = await antifraud.get("/manifest")
    assert response.status_code == 200
    assert response.json() == {
        "cardholderDocument": "optional",
        "allowAntifraudOnGiftCard": True,
        "customFields": [],
    }


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "antifraud_cardholder_document": "unused",
            "antifraud_allow_on_gift_card": False,
            "antifraud_custom_fields": [
                {
                    "name": "Policy",
                    "type": "select",
                    "options": [{"text": "Strict", "value": "strict"}],
                }
            ],
        }  # fmt: skip
    ],
    indirect=True,
)
async def test_manifest_follows_settings(antifraud: httpx.AsyncClient) -> None:
    manifest = (await antifraud.get("/manifest")).json()
    assert manifest["cardholderDocument"] == "unused"
    assert manifest["allowAntifraudOnGiftCard"] is False
    assert manifest["customFields"][0]["options"] == [{"text": "Strict", "value": "strict"}]


# ----------------------------------------------------------------------------- decisions


async def test_an_ordinary_order_is_approved_at_once_and_read_back(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = order()
    answer = await post(antifraud, headers, body)
    assert answer["id"] == body["id"] and len(answer["tid"]) == 32
    assert answer["status"] == "approved" and answer["analysisType"] == "automatic"
    assert answer["score"] == answer["fraudRiskPercentage"] < 50
    assert answer["code"] == "approved" and "risk score" in answer["message"]
    # The suite's card is issued in the US and ships to Brazil: the default rule says so.
    assert "card-country-differs-from-shipping" in answer["responses"]
    read = (await antifraud.get(f"/transactions/{body['id']}", headers=headers)).json()
    assert read == answer


async def test_a_risky_order_is_denied_and_a_middling_one_goes_to_review(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    services: Services,
    merchant: MerchantCredentials,
) -> None:
    await load_rules(services, merchant, REVIEW_LARGE_ORDERS)

    denied = await post(antifraud, headers, order(**{"miniCart.buyer.email": "Fraud@example.com"}))
    assert denied["status"] == "denied" and denied["score"] == 100
    assert "banned" in denied["responses"]

    huge = await post(antifraud, headers, order(value=6000))
    assert huge["status"] == "denied" and set(huge["responses"]) == {"large", "huge"}

    pending = order(value=2000)
    received = await post(antifraud, headers, pending)
    assert received["status"] == "received" and received["analysisType"] == "manual"
    assert received["score"] == 60 and list(received["responses"]) == ["large"]
    read = (await antifraud.get(f"/transactions/{pending['id']}", headers=headers)).json()
    assert read["status"] == "undefined" and read["analysisType"] == "manual"
    queue = await services.antifraud.review_queue(None, 10)
    assert [a.transaction_id for a in queue] == [pending["id"]]

    small = await post(antifraud, headers, order(value=10))
    assert small["status"] == "approved" and small["score"] == 0 and small["responses"] == {}


async def test_velocity_counts_earlier_orders_of_the_same_card(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """The default `card-burst` rule: more than 3 orders from one card within an hour."""
    answers = [await post(antifraud, headers, order()) for _ in range(5)]
    fired = ["card-burst" in a["responses"] for a in answers]
    assert fired == [False, False, False, True, True]
    assert answers[3]["responses"]["card-burst"].startswith("4 orders from this card in 1h")
    assert answers[4]["responses"]["card-burst"].startswith("5 orders")
    other_card = order(**{"payments.0.details.lastDigits": "0000"})
    assert "card-burst" not in (await post(antifraud, headers, other_card))["responses"]


async def test_first_purchase_of_a_new_buyer_counts_once(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    email = {"miniCart.buyer.email": f"{uuid.uuid4().hex}@example.com"}
    first = await post(antifraud, headers, order(value=1500, **email))
    second = await post(antifraud, headers, order(value=1500, **email))
    assert "new-buyer-large-order" in first["responses"]
    assert "new-buyer-large-order" not in second["responses"]


async def test_velocity_is_per_merchant(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    other_merchant: MerchantCredentials,
) -> None:
    for _ in range(4):
        await post(antifraud, headers, order())
    elsewhere = await post(antifraud, provider_headers(other_merchant), order())
    assert "card-burst" not in elsewhere["responses"]


async def test_rules_loaded_apply_to_the_next_order_without_a_restart(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    services: Services,
    merchant: MerchantCredentials,
) -> None:
    assert (await post(antifraud, headers, order()))["status"] == "approved"
    await load_rules(services, merchant, "rules: [{name: all, kind: amount, above: 0, score: 95}]")
    assert (await post(antifraud, headers, order()))["status"] == "denied"


# ----------------------------------------------------------------------------- idempotency


async def test_a_repeated_post_answers_the_stored_analysis(
    antifraud: httpx.AsyncClient, headers: dict[str, str], services: Services
) -> None:
    body = order()
    first = await post(antifraud, headers, body)
    again = await post(antifraud, headers, {**body, "value": 99999})
    assert again == first
    assert await analyses(services) == 1


async def test_concurrent_repeats_make_one_analysis(
    antifraud: httpx.AsyncClient, headers: dict[str, str], services: Services
) -> None:
    body = order()
    answers = await asyncio.gather(*(post(antifraud, headers, body) for _ in range(10)))
    assert len({a["tid"] for a in answers}) == 1
    assert await analyses(services) == 1


async def test_the_same_id_at_two_merchants_is_two_analyses(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    other_merchant: MerchantCredentials,
    services: Services,
) -> None:
    body = order()
    ours = await post(antifraud, headers, body)
    theirs = await post(antifraud, provider_headers(other_merchant), body)
    assert ours["tid"] != theirs["tid"]
    assert await analyses(services) == 2


# ----------------------------------------------------------------------------- reads


async def test_reads_need_credentials_except_for_test_suite_analyses(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    other_merchant: MerchantCredentials,
) -> None:
    real = order()
    await post(antifraud, headers, real)
    for read_headers in ({}, SUITE):
        response = await antifraud.get(f"/transactions/{real['id']}", headers=read_headers)
        assert response.status_code == 401 and response.json()["code"] == "missing-credentials"
    theirs = await antifraud.get(
        f"/transactions/{real['id']}", headers=provider_headers(other_merchant)
    )
    assert theirs.status_code == 404 and theirs.json()["code"] == "transaction-not-found"

    suite = order(suite_id("1"))
    await post(antifraud, {**headers, **SUITE}, suite)
    assert (await antifraud.get(f"/transactions/{suite['id']}")).json()["status"] == "approved"


async def test_unknown_transaction_is_404(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await antifraud.get("/transactions/NOPE", headers=headers)
    assert response.status_code == 404 and response.json()["code"] == "transaction-not-found"


# ----------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/transactions"),
        ("POST", "/pre-analysis"),
        ("PUT", "/transactions/ABC"),
        ("DELETE", "/transactions/ABC"),
    ],
)
async def test_missing_or_wrong_credentials_are_401_and_change_nothing(
    antifraud: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    method: str,
    path: str,
) -> None:
    body = order("ABC")
    wrong = {"X-PROVIDER-API-AppKey": merchant.app_key, "X-PROVIDER-API-AppToken": "nope"}
    unknown = {"X-PROVIDER-API-AppKey": "who", "X-PROVIDER-API-AppToken": merchant.app_token}
    vtex_names = {"X-VTEX-API-AppKey": merchant.app_key, "X-VTEX-API-AppToken": merchant.app_token}
    for sent in ({}, wrong, unknown, vtex_names, {**SUITE}):
        response = await antifraud.request(method, path, json=body, headers=sent)
        assert response.status_code == 401, (sent, response.text)
        assert response.json()["code"] in {"missing-credentials", "unauthorized"}
    assert await analyses(services) == 0


# ----------------------------------------------------------------------------- lenient input


async def test_vtex_payload_variants_are_accepted(
    antifraud: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """Reference A14: missing "required" fields, null address parts, a decimal string value, a
    naive start date, a gift card payment with masked codes and no currency."""
    gift_card = {
        "id": "DDB18D1721914346BF88EJ11B01C6312",
        "method": "GiftCard",
        "name": "Gift",
        "value": 395.71,
        "installments": 1,
        "details": {
            "address": {"country": "BRA", "neighborhood": None, "postalCode": "55555555"},
            "giftCardId": "67",
            "redemptionToken": "FJPI***************",
            "redemptionCode": "FJPI***************",
            "provider": "VtexGiftCard",
        },
    }
    variants = [
        {"id": uuid.uuid4().hex},
        order(store=..., transactionStartDate="2025-06-15T18:08:23", value="20.95"),
        order(payments=[gift_card], value=395.71, **{"miniCart.listRegistry": ...}),
        order(**{"miniCart.buyer": None, "miniCart.items.0.categoryId": 111}),
        order(merchantSettings=[{"name": "Policy", "value": "strict"}], sellerId="1"),
    ]
    for body in variants:
        answer = await post(antifraud, headers, body)
        assert answer["id"] == body["id"] and answer["status"] in {"approved", "received"}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "invalid-json"),
        (b"[]", "invalid-json"),
        (b'{"value": 10}', "invalid-request"),
        (b'{"id": ""}', "invalid-request"),
        (b'{"id": "' + b"A" * 256 + b'"}', "invalid-request"),
        (b'{"id": "A/B"}', "invalid-request"),
        (b'{"id": "A", "value": -1}', "invalid-amount"),
        (b'{"id": "A", "value": "NaN"}', "invalid-request"),
        (b'{"id": "A", "value": 1e999999}', "invalid-request"),  # a float: infinity
        (b'{"id": "A", "value": "1e999999"}', "invalid-amount"),  # a decimal: too many digits
        (b'{"id": "A", "value": 1e17}', "invalid-amount"),  # beyond a 64-bit column in cents
        (b'{"id": "A", "x": ' + b"[" * 32 + b"]" * 32 + b"}", "invalid-json"),  # 33 levels
        (b'{"id": "A", "payments": {"id": 1}}', "invalid-request"),
        (b'{"id": "A", "hook": "' + b"h" * 2001 + b'"}', "invalid-request"),
    ],
)
async def test_bad_input_is_a_400_and_stores_nothing(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    services: Services,
    content: bytes,
    code: str,
) -> None:
    response = await antifraud.post("/transactions", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert await analyses(services) == 0


async def test_a_hook_off_the_allow_list_is_refused_before_anything_is_stored(
    antifraud: httpx.AsyncClient, headers: dict[str, str], services: Services
) -> None:
    for hook in (
        "https://attacker.example.org/steal",
        "http://hook.example.com/plain-http",
        "https://10.0.0.1/x",
        "https://user:pw@hook.example.com/x",
    ):
        body = order(hook=hook)
        for method, path in (("POST", "/transactions"), ("PUT", f"/transactions/{body['id']}")):
            response = await antifraud.request(method, path, json=body, headers=headers)
            assert response.status_code == 400, (hook, method)
            assert response.json()["code"] == "hook-url-not-allowed"
    assert await analyses(services) == 0


# ----------------------------------------------------------------------------- PUT and DELETE


async def test_put_updates_the_order_but_not_the_decision(
    antifraud: httpx.AsyncClient, headers: dict[str, str], services: Services
) -> None:
    body = order()
    first = await post(antifraud, headers, body)
    new_hook = "https://hook.example.com/other"
    response = await antifraud.put(
        f"/transactions/{body['id']}",
        json={**body, "value": 99999, "hook": new_hook},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {**first, "status": first["status"]}
    stored = await services.antifraud.by_tid(first["tid"])
    assert stored.hook_url == new_hook and stored.amount_minor == 9_999_900


async def test_put_of_an_unknown_id_analyses_it_and_refuses_a_mismatched_id(
    antifraud: httpx.AsyncClient, headers: dict[str, str], services: Services
) -> None:
    body = order()
    created = await antifraud.put(f"/transactions/{body['id']}", json=body, headers=headers)
    assert created.status_code == 200 and created.json()["status"] == "approved"
    mismatch = await antifraud.put("/transactions/OTHER", json=order(), headers=headers)
    assert mismatch.status_code == 400 and mismatch.json()["code"] == "id-mismatch"
    assert await analyses(services) == 1


async def test_delete_stops_a_pending_review_for_good(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    services: Services,
    merchant: MerchantCredentials,
) -> None:
    await load_rules(services, merchant, REVIEW_LARGE_ORDERS)
    body = order(value=2000)
    tid = (await post(antifraud, headers, body))["tid"]

    stopped = await antifraud.delete(f"/transactions/{body['id']}", headers=headers)
    assert stopped.status_code == 200
    assert stopped.json() == {"id": body["id"], "tid": tid, "status": "undefined", "stopped": True}
    again = await antifraud.delete(f"/transactions/{body['id']}", headers=headers)
    assert again.json()["stopped"] is True
    assert await services.antifraud.review_queue(None, 10) == []
    from connector.errors import Conflict

    with pytest.raises(Conflict):
        await services.antifraud.decide_review(tid, "approved", operator="ana", reason="ok")
    assert await services.antifraud.decide_due() == 0
    unknown = await antifraud.delete("/transactions/NEVER-SEEN", headers=headers)
    assert unknown.status_code == 200
    assert unknown.json() == {"id": "NEVER-SEEN", "tid": None, "status": "undefined",
                              "stopped": False}  # fmt: skip


# ----------------------------------------------------------------------------- pre-analysis


async def test_pre_analysis_answers_approved_or_denied_and_stores_nothing(
    antifraud: httpx.AsyncClient,
    headers: dict[str, str],
    services: Services,
    merchant: MerchantCredentials,
) -> None:
    await load_rules(services, merchant, REVIEW_LARGE_ORDERS)
    cases = [(order(value=10), "approved"), (order(value=2000), "approved"),
             (order(value=6000), "denied")]  # fmt: skip
    for body, expected in cases:
        response = await antifraud.post("/pre-analysis", json=body, headers=headers)
        assert response.status_code == 200
        answer = response.json()
        assert answer["status"] == expected and answer["analysisType"] == "automatic"
        assert answer["id"] == body["id"] and len(answer["tid"]) == 32
    assert await analyses(services) == 0
