"""The Gift Card Hub's flows, in its order (reference, B1.1): search, get, debit, then GET the
settlements and POST only the remainder, GET the cancellations and POST only the remainder."""

from __future__ import annotations

import httpx

from connector.app import Services
from tests.giftcards.conftest import IssueCard, assert_ledger, debit, ledger_of


async def _sum(hub: httpx.AsyncClient, url: str, headers: dict[str, str]) -> float:
    response = await hub.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return round(sum(item["value"] for item in response.json()), 2)


async def test_checkout_settle_and_cancel_as_the_hub_does(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("100.00", profile_id="michael.scott96@mail.com")
    card_id = issued.card.card_id

    # 1. Checkout searches the shopper's cards (by email) and the typed code.
    search = {
        "client": {"id": "3b1abc17", "email": "Michael.Scott96@mail.com ", "document": "234235"},
        "cart": {
            "grandTotal": 182,
            "relationName": None,
            "redemptionCode": None,
            "discounts": 20,
            "shipping": 2,
            "taxes": 0,
            "items": [],
            "itemsTotal": 200,
        },
    }
    found = await hub.post("/giftcards/_search", json=search, headers=headers)
    assert found.status_code == 200, found.text
    assert [card["id"] for card in found.json()] == [card_id]
    assert found.json()[0]["balance"] == 100
    assert found.json()[0]["provider"] == "connector"
    assert found.json()[0]["_self"]["href"] == f"/giftcard/giftcards/{card_id}"
    assert found.headers["REST-Content-Range"] == "resources 0-0/1"
    assert found.headers["Cache-Control"] == "no-store"

    # 2. The shopper picks it: GET by id (with the Hub's cache-buster).
    card = await hub.get(
        f"/giftcards/{card_id}", params={"ts": "639091131481342036"}, headers=headers
    )
    assert card.status_code == 200, card.text
    body = card.json()
    assert body["id"] == card_id and body["balance"] == 100 and body["currencyCode"] == "BRL"
    assert body["redemptionCode"] == "****-****-****-" + issued.redemption_code[-4:]
    assert issued.redemption_code not in card.text
    assert body["transactions"]["href"] == f"/giftcard/giftcards/{card_id}/transactions"

    # 3. The order is placed: a Debit of 31.90 holds the money.
    created = await hub.post(
        f"/giftcards/{card_id}/transactions", json=debit(issued, 31.9), headers=headers
    )
    assert created.status_code == 200, created.text
    transaction_id = created.json()["id"]
    assert created.json()["cardId"] == card_id
    assert created.json()["_self"]["href"].endswith(f"/transactions/{transaction_id}")
    after_debit = await hub.get(f"/giftcards/{card_id}", headers=headers)
    assert after_debit.json()["balance"] == 68.1

    url = f"/giftcards/{card_id}/transactions/{transaction_id}"
    authorization = (await hub.get(f"{url}/authorization", headers=headers)).json()
    assert authorization["oid"] == transaction_id and authorization["value"] == 31.9
    detail = (await hub.get(url, headers=headers)).json()
    assert detail["operation"] == "Debit" and detail["value"] == 31.9
    assert detail["settlement"]["href"].endswith(f"{transaction_id}/settlements")

    # 4. Settlement, as the Hub: GET the settlements, POST only what is left, twice (partial).
    for part in (20.0, 11.9):
        settled = await _sum(hub, f"{url}/settlements", headers)
        assert settled < 31.9
        response = await hub.post(
            f"{url}/settlements",
            json={"value": part, "requestId": f"settle-{part}"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["value"] == part and response.json()["oid"]
    assert await _sum(hub, f"{url}/settlements", headers) == 31.9
    # Fully settled: the Hub would not POST again; if it did, it is refused.
    over = await hub.post(
        f"{url}/settlements", json={"value": 0.01, "requestId": "late"}, headers=headers
    )
    assert over.status_code == 422 and over.json()["code"] == "exceeds-held-amount"

    # 5. A refund, as the Hub: GET the cancellations, POST the remainder, in two parts.
    assert await _sum(hub, f"{url}/cancellations", headers) == 0
    first = await hub.post(
        f"{url}/cancellations", json={"value": 10, "requestId": "c1"}, headers=headers
    )
    assert first.status_code == 200, first.text
    remainder = round(31.9 - await _sum(hub, f"{url}/cancellations", headers), 2)
    second = await hub.post(
        f"{url}/cancellations", json={"value": remainder, "requestId": "c2"}, headers=headers
    )
    assert second.status_code == 200, second.text
    assert await _sum(hub, f"{url}/cancellations", headers) == 31.9
    over = await hub.post(
        f"{url}/cancellations", json={"value": 0.01, "requestId": "c3"}, headers=headers
    )
    assert over.status_code == 422 and over.json()["code"] == "exceeds-cancellable-amount"

    final = await hub.get(f"/giftcards/{card_id}", headers=headers)
    assert final.json()["balance"] == 100
    await assert_ledger(services, card_id, available=10000, held=0)


async def test_cancelling_before_settlement_releases_the_hold(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("50")
    card_id = issued.card.card_id
    created = await hub.post(
        f"/giftcards/{card_id}/transactions", json=debit(issued, 40), headers=headers
    )
    url = f"/giftcards/{card_id}/transactions/{created.json()['id']}"
    assert (await ledger_of(services, card_id))["held"] == 4000

    # Settle part of it, then cancel: the rest of the hold is released first, then refunded.
    await hub.post(f"{url}/settlements", json={"value": 15, "requestId": "s"}, headers=headers)
    released = await hub.post(
        f"{url}/cancellations", json={"value": 25, "requestId": "r"}, headers=headers
    )
    assert released.status_code == 200
    totals = await ledger_of(services, card_id)
    assert totals["held"] == 0 and totals["available"] == 1000 + 2500
    # Nothing held is left to settle.
    refused = await hub.post(
        f"{url}/settlements", json={"value": 1, "requestId": "s2"}, headers=headers
    )
    assert refused.status_code == 422
    refunded = await hub.post(
        f"{url}/cancellations", json={"value": 15, "requestId": "f"}, headers=headers
    )
    assert refunded.status_code == 200
    await assert_ledger(services, card_id, available=5000, held=0)


async def test_a_card_created_by_the_hub_starts_at_zero_and_is_loaded_by_a_credit(
    hub: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await hub.post(
        "/giftcards",
        json={
            "relationName": "loyalty-program",
            "caption": "Loyalty program",
            "restrictedToOwner": True,
            "multipleRedemptions": True,
            "multipleCredits": True,
            "profileId": "92de2249-0e02-4ca9-a4aa-a09cc9d8f7ff",
            "currencyCode": "USD",
            "emissionDate": "2026-08-01T13:15:30Z",
            "expiringDate": "2036-09-01T13:15:30",
        },
        headers=headers,
    )
    assert created.status_code == 200, created.text
    card = created.json()
    assert card["balance"] == 0 and card["currencyCode"] == "USD"
    assert card["expiringDate"] == "2036-09-01T13:15:30.000Z"
    assert len(card["redemptionCode"]) == 19 and "*" not in card["redemptionCode"]

    # A zero-balance card is never offered: `[]`, not `balance: 0`.
    search = {"client": {"id": "92de2249-0e02-4ca9-a4aa-a09cc9d8f7ff"}, "cart": {}}
    empty = await hub.post("/giftcards/_search", json=search, headers=headers)
    assert empty.json() == [] and empty.headers["REST-Content-Range"] == "resources 0-0/0"

    credit = {
        "operation": "Credit",
        "value": 25.5,
        "description": "loyalty points",
        "redemptionToken": card["redemptionToken"],
        "redemptionCode": None,
        "requestId": "load-1",
    }
    loaded = await hub.post(f"/giftcards/{card['id']}/transactions", json=credit, headers=headers)
    assert loaded.status_code == 200, loaded.text
    settlements = await hub.get(
        f"/giftcards/{card['id']}/transactions/{loaded.json()['id']}/settlements", headers=headers
    )
    assert [item["value"] for item in settlements.json()] == [25.5]
    found = await hub.post("/giftcards/_search", json=search, headers=headers)
    assert [(item["id"], item["balance"]) for item in found.json()] == [(card["id"], 25.5)]
    # The voucher is also found by its code, typed in any case and without dashes.
    typed = card["redemptionCode"].replace("-", "").lower()
    by_code = await hub.post(
        "/giftcards/_search",
        headers=headers,
        json={
            "client": {"email": "92de2249-0e02-4ca9-a4aa-a09cc9d8f7ff"},
            "cart": {"redemptionCode": typed},
        },
    )
    assert [item["id"] for item in by_code.json()] == [card["id"]]
