"""What the Hub requires beyond the shapes: its auth probes (401/403, empty body, no effect) on
every endpoint, its media types and extra headers, trailing slashes, and pagination."""

from __future__ import annotations

import httpx
import pytest

from connector.app import Services
from tests.conftest import MerchantCredentials
from tests.giftcards.conftest import VENDOR_JSON, IssueCard, debit, ledger_of

TRANSACTION = "/giftcards/{card}/transactions/{transaction}"
ENDPOINTS = [
    ("POST", "/giftcards/_search", {"client": {"email": "a@b.c"}, "cart": {}}),
    ("POST", "/giftcards", {"relationName": "r", "caption": "c", "profileId": "p"}),
    ("GET", "/giftcards/{card}", None),
    ("GET", "/giftcards/{card}/transactions", None),
    ("POST", "/giftcards/{card}/transactions", "debit"),
    ("GET", TRANSACTION, None),
    ("GET", TRANSACTION + "/authorization", None),
    ("GET", TRANSACTION + "/settlements", None),
    ("POST", TRANSACTION + "/settlements", {"value": 1, "requestId": "probe"}),
    ("GET", TRANSACTION + "/cancellations", None),
    ("POST", TRANSACTION + "/cancellations", {"value": 1, "requestId": "probe"}),
]


@pytest.mark.parametrize(
    ("probe", "status"),
    [
        ({}, 401),
        ({"X-PROVIDER-API-AppKey": "{key}"}, 401),
        ({"X-PROVIDER-API-AppToken": "{token}"}, 401),
        ({"X-PROVIDER-API-AppKey": "", "X-PROVIDER-API-AppToken": ""}, 401),
        ({"X-PROVIDER-API-AppKey": "{key}", "X-PROVIDER-API-AppToken": "wrong"}, 403),
        ({"X-PROVIDER-API-AppKey": "unknown", "X-PROVIDER-API-AppToken": "{token}"}, 403),
        # The payment protocol's header names are not the Hub's.
        ({"X-VTEX-API-AppKey": "{key}", "X-VTEX-API-AppToken": "{token}"}, 401),
    ],
)
async def test_auth_probes_get_an_empty_401_or_403_and_change_nothing(
    hub: httpx.AsyncClient,
    headers: dict[str, str],
    merchant: MerchantCredentials,
    issue_card: IssueCard,
    services: Services,
    probe: dict[str, str],
    status: int,
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    created = await hub.post(
        f"/giftcards/{card}/transactions", json=debit(issued, 10), headers=headers
    )
    transaction = created.json()["id"]
    before = await ledger_of(services, card)
    probe_headers = {
        name: value.format(key=merchant.app_key, token=merchant.app_token)
        for name, value in probe.items()
    }
    for method, template, body in ENDPOINTS:
        url = template.format(card=card, transaction=transaction)
        payload = debit(issued, 10) if body == "debit" else body
        response = await hub.request(method, url, json=payload, headers=probe_headers)
        assert response.status_code == status, (method, url, response.text)
        assert response.content == b"", (method, url)
        assert response.headers["Cache-Control"] == "no-store"
    assert await ledger_of(services, card) == before
    listing = await hub.get(f"/giftcards/{card}/transactions", headers=headers)
    assert len(listing.json()) == 2  # the operator's load and the debit
    assert len(await services.giftcards.list(None, None, 0, 10)) == 1


async def test_another_merchants_card_is_not_found(
    hub: httpx.AsyncClient,
    issue_card: IssueCard,
    other_merchant: MerchantCredentials,
    headers: dict[str, str],
) -> None:
    issued = await issue_card("100")
    other = {
        **headers,
        "X-PROVIDER-API-AppKey": other_merchant.app_key,
        "X-PROVIDER-API-AppToken": other_merchant.app_token,
    }
    response = await hub.get(f"/giftcards/{issued.card.card_id}", headers=other)
    assert response.status_code == 404 and response.json()["code"] == "card-not-found"
    by_code = {"client": {}, "cart": {"redemptionCode": issued.redemption_code}}
    found = await hub.post("/giftcards/_search", headers=other, json=by_code)
    assert found.json() == []


@pytest.mark.parametrize(
    "media_type",
    [
        VENDOR_JSON,
        "application/vnd.vtex.giftcardproviders.v1+json",
        "application/json",
        "text/plain",
        None,
    ],
)
async def test_any_json_media_type_and_unknown_headers_are_accepted(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, media_type: str | None
) -> None:
    issued = await issue_card("100")
    sent = {**headers, "accept-encoding": "gzip", "x-vtex-debug-id": ""}
    if media_type is None:
        del sent["Content-Type"]
    else:
        sent["Content-Type"] = sent["Accept"] = media_type
    response = await hub.post(
        f"/giftcards/{issued.card.card_id}/transactions", json=debit(issued, 1), headers=sent
    )
    assert response.status_code == 200, response.text


async def test_trailing_slashes_and_the_cache_buster_are_accepted(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    got = await hub.get(f"/giftcards/{card}/", params={"ts": "639091131481342036"}, headers=headers)
    assert got.status_code == 200 and got.json()["id"] == card
    created = await hub.post(
        f"/giftcards/{card}/transactions/", json=debit(issued, 1), headers=headers
    )
    assert created.status_code == 200
    settlements = await hub.get(
        f"/giftcards/{card}/transactions/{created.json()['id']}/settlements/", headers=headers
    )
    assert settlements.status_code == 200 and settlements.json() == []


async def test_search_pages_with_rest_range(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    cards = [await issue_card("10", profile_id="loyal@example.com") for _ in range(5)]
    await issue_card("0", profile_id="loyal@example.com")  # empty: never listed
    expected = sorted(card.card.card_id for card in cards)
    search = {"client": {"email": "loyal@example.com"}, "cart": {}}

    pages = []
    for first, last in ((0, 1), (2, 3), (4, 5)):
        ranged = {**headers, "REST-Range": f"resources={first}-{last}"}
        response = await hub.post("/giftcards/_search", json=search, headers=ranged)
        assert response.status_code == 200
        pages.append([card["id"] for card in response.json()])
        shown = min(last, 4)
        assert response.headers["REST-Content-Range"] == f"resources {first}-{shown}/5"
    assert sorted(sum(pages, [])) == expected
    assert [len(page) for page in pages] == [2, 2, 1]

    everything = await hub.post("/giftcards/_search", json=search, headers=headers)
    assert everything.headers["REST-Content-Range"] == "resources 0-4/5"

    for bad in ("resources=5-1", "items=0-9", "resources=a-b", "0-9"):
        response = await hub.post(
            "/giftcards/_search", json=search, headers={**headers, "REST-Range": bad}
        )
        assert response.status_code == 400 and response.json()["code"] == "invalid-range", bad


async def test_transaction_list_pages_too(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    ids = []
    for _ in range(3):
        created = await hub.post(
            f"/giftcards/{card}/transactions", json=debit(issued, 1), headers=headers
        )
        ids.append(created.json()["id"])
    listing = await hub.get(
        f"/giftcards/{card}/transactions", headers={**headers, "REST-Range": "resources=1-2"}
    )
    # The card's load by the operator is its first transaction.
    assert [item["id"] for item in listing.json()] == ids[:2]
    assert listing.headers["REST-Content-Range"] == "resources 1-2/4"
    assert all(item["cardId"] == card for item in listing.json())


async def test_search_ignores_expired_blocked_and_restricted_cards(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    owner = {"client": {"document": "02906792063"}, "cart": {}}
    usable = await issue_card("10", profile_id="02906792063")
    blocked = await issue_card("10", profile_id="02906792063")
    await services.giftcards.set_blocked(blocked.card.card_id, True, "test", "stolen")
    restricted = await issue_card("10", profile_id="someone@else.com", restricted_to_owner=True)

    found = await hub.post("/giftcards/_search", json=owner, headers=headers)
    assert [card["id"] for card in found.json()] == [usable.card.card_id]
    # A restricted voucher's code is no use to someone else...
    typed = {
        "client": {"email": "me@example.com"},
        "cart": {"redemptionCode": restricted.redemption_code},
    }
    assert (await hub.post("/giftcards/_search", json=typed, headers=headers)).json() == []
    # ...but works for its owner; a blocked card is invisible even by its code.
    typed["client"] = {"email": "SOMEONE@else.com"}
    found = await hub.post("/giftcards/_search", json=typed, headers=headers)
    assert [card["id"] for card in found.json()] == [restricted.card.card_id]
    by_code = {"client": {}, "cart": {"redemptionCode": blocked.redemption_code}}
    assert (await hub.post("/giftcards/_search", json=by_code, headers=headers)).json() == []
    # GET by id of a blocked card shows nothing to pay, so checkout never offers it.
    detail = await hub.get(f"/giftcards/{blocked.card.card_id}", headers=headers)
    assert detail.json()["balance"] == 0
    # A masked code (as VTEX echoes it) finds nothing.
    masked = {"client": {}, "cart": {"redemptionCode": "***********" + usable.redemption_code[-4:]}}
    assert (await hub.post("/giftcards/_search", json=masked, headers=headers)).json() == []


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"client": "x"}', b'{"cart": {"grandTotal": "lots"}}'],
)
async def test_bad_search_bodies_get_a_clear_400(
    hub: httpx.AsyncClient, headers: dict[str, str], body: bytes
) -> None:
    response = await hub.post("/giftcards/_search", content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["code"] in {"invalid-json", "invalid-request"}
