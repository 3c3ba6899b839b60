"""The ledger's rules, one by one: idempotent repeats, refusals that change nothing, card states,
single-use and single-load cards, owners, credits taken back, and holds that expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from connector.app import Services
from connector.db.tables import GiftCard, utcnow
from tests.giftcards.conftest import IssueCard, assert_ledger, debit, ledger_of


async def _post(hub: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> Any:
    return await hub.post(url, json=body, headers=headers)


async def test_a_repeated_debit_answers_the_first_and_moves_money_once(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("100")
    url = f"/giftcards/{issued.card.card_id}/transactions"
    body = debit(issued, 30, request_id="v2915869org-02")
    first, second = await _post(hub, url, body, headers), await _post(hub, url, body, headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    # Concurrent repeats in one process, too.
    racing = await asyncio.gather(*(_post(hub, url, body, headers) for _ in range(10)))
    assert {r.json()["id"] for r in racing} == {first.json()["id"]}
    assert (await ledger_of(services, issued.card.card_id))["available"] == 7_000

    for changed in ({"value": 31}, {"operation": "Credit"}):
        reused = await _post(hub, url, {**body, **changed}, headers)
        assert reused.status_code == 409 and reused.json()["code"] == "request-id-reused"
    assert (await ledger_of(services, issued.card.card_id))["available"] == 7_000


@pytest.mark.parametrize("kind", ["settlements", "cancellations"])
async def test_a_repeated_settlement_or_cancellation_answers_the_first(
    hub: httpx.AsyncClient,
    headers: dict[str, str],
    issue_card: IssueCard,
    services: Services,
    kind: str,
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    created = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 40), headers)
    url = f"/giftcards/{card}/transactions/{created.json()['id']}/{kind}"
    body = {"value": 15, "requestId": "12093812masoidj120398"}
    answers = await asyncio.gather(*(_post(hub, url, body, headers) for _ in range(8)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["oid"] for r in answers}) == 1
    assert [item["value"] for item in (await hub.get(url, headers=headers)).json()] == [15]
    reused = await _post(hub, url, {**body, "value": 16}, headers)
    assert reused.status_code == 409 and reused.json()["code"] == "request-id-reused"
    totals = await ledger_of(services, card)
    assert totals["held"] == 2_500
    assert totals["available"] == (6_000 if kind == "settlements" else 7_500)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, "invalid-request"),
        (-5, "invalid-request"),
        (1.005, "invalid-amount"),
        (10**14, "invalid-amount"),
        ("NaN", "invalid-request"),
        ("ten", "invalid-request"),
    ],
)
async def test_bad_amounts_are_a_400_and_change_nothing(
    hub: httpx.AsyncClient,
    headers: dict[str, str],
    issue_card: IssueCard,
    services: Services,
    value: Any,
    code: str,
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    response = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, value), headers)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
    assert (await ledger_of(services, card))["available"] == 10_000


async def test_more_than_the_balance_is_refused_and_changes_nothing(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("20")
    card = issued.card.card_id
    refused = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 20.01), headers)
    assert refused.status_code == 422 and refused.json()["code"] == "insufficient-balance"
    assert "20.00 BRL" in refused.json()["message"]
    exact = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 20), headers)
    assert exact.status_code == 200
    await assert_ledger(services, card, available=0, held=2_000)


async def test_unknown_cards_and_transactions_are_404(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("20")
    card = issued.card.card_id
    assert (await hub.get("/giftcards/nope", headers=headers)).json()["code"] == "card-not-found"
    for suffix in ("", "/authorization", "/settlements", "/cancellations"):
        response = await hub.get(f"/giftcards/{card}/transactions/nope{suffix}", headers=headers)
        assert response.status_code == 404 and response.json()["code"] == "transaction-not-found"
    posted = await _post(hub, "/giftcards/nope/transactions", debit(issued, 1), headers)
    assert posted.status_code == 404


async def test_blocked_and_expired_cards_refuse_new_debits_but_settle_old_ones(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    held = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 10), headers)
    await services.giftcards.set_blocked(card, True, "ops", "reported stolen")
    refused = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 10), headers)
    assert refused.status_code == 422 and refused.json()["code"] == "card-blocked"
    url = f"/giftcards/{card}/transactions/{held.json()['id']}"
    settled = await _post(hub, f"{url}/settlements", {"value": 10, "requestId": "s"}, headers)
    assert settled.status_code == 200

    await services.giftcards.set_blocked(card, False, "ops", "found")
    async with services.database.writer() as session:
        await session.execute(
            update(GiftCard)
            .where(GiftCard.card_id == card)
            .values(expiring_date=utcnow() - timedelta(seconds=1))
        )
    expired = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 10), headers)
    assert expired.status_code == 422 and expired.json()["code"] == "card-expired"
    assert (await hub.get(f"/giftcards/{card}", headers=headers)).json()["balance"] == 0
    # A refund still lands on an expired card.
    refund = await _post(hub, f"{url}/cancellations", {"value": 10, "requestId": "c"}, headers)
    assert refund.status_code == 200
    assert (await ledger_of(services, card))["available"] == 10_000


async def test_the_card_must_be_named_by_its_token_or_full_code(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("100")
    url = f"/giftcards/{issued.card.card_id}/transactions"
    wrong_token = debit(issued, 1, redemptionToken="b2dac6f2-f365-48cd-82a9-0b376a55557a")
    only_masked = debit(issued, 1, redemptionToken=None)
    for body in (wrong_token, only_masked):
        response = await _post(hub, url, body, headers)
        assert response.status_code == 422 and response.json()["code"] == "redemption-mismatch"
    by_code = debit(issued, 1, redemptionToken=None, redemptionCode=issued.redemption_code)
    assert (await _post(hub, url, by_code, headers)).status_code == 200
    wrong_credit = {
        "operation": "Credit",
        "value": 1,
        "requestId": "c",
        "redemptionToken": "not-this-card",
    }
    assert (await _post(hub, url, wrong_credit, headers)).status_code == 422


async def test_a_card_restricted_to_its_owner_pays_only_for_that_owner(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    owner = "michael.scott96@mail.com"
    issued = await issue_card("100", profile_id=owner, restricted_to_owner=True)
    url = f"/giftcards/{issued.card.card_id}/transactions"
    stranger = debit(issued, 1)
    stranger["orderInfo"]["clientProfile"] = {"email": "dwight@mail.com", "document": "1"}
    refused = await _post(hub, url, stranger, headers)
    assert refused.status_code == 422 and refused.json()["code"] == "not-card-owner"
    assert (await _post(hub, url, debit(issued, 1), headers)).status_code == 200


async def test_a_single_use_card_is_used_once_unless_that_use_is_cancelled(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("100", multiple_redemptions=False)
    url = f"/giftcards/{issued.card.card_id}/transactions"
    first = await _post(hub, url, debit(issued, 30), headers)
    second = await _post(hub, url, debit(issued, 30), headers)
    assert second.status_code == 422 and second.json()["code"] == "card-already-redeemed"
    cancel = f"{url}/{first.json()['id']}/cancellations"
    assert (await _post(hub, cancel, {"value": 30, "requestId": "c"}, headers)).status_code == 200
    assert (await _post(hub, url, debit(issued, 30), headers)).status_code == 200


async def test_credits_recharge_and_can_be_taken_back_while_unspent(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("0")
    card = issued.card.card_id
    url = f"/giftcards/{card}/transactions"
    credit = {
        "operation": "credit",
        "value": 50,
        "requestId": "load",
        "redemptionToken": issued.card.redemption_token,
    }
    loaded = await _post(hub, url, credit, headers)
    assert loaded.status_code == 200
    detail = (await hub.get(f"{url}/{loaded.json()['id']}", headers=headers)).json()
    assert detail["operation"] == "Credit" and detail["value"] == 50
    credit_url = f"{url}/{loaded.json()['id']}"
    settle = await _post(hub, f"{credit_url}/settlements", {"value": 1, "requestId": "s"}, headers)
    assert settle.status_code == 422 and settle.json()["code"] == "nothing-to-settle"

    await _post(hub, url, debit(issued, 40), headers)  # spends 40 of the 50
    back = await _post(hub, f"{credit_url}/cancellations", {"value": 20, "requestId": "r"}, headers)
    assert back.status_code == 422 and back.json()["code"] == "insufficient-balance"
    back = await _post(hub, f"{credit_url}/cancellations", {"value": 10, "requestId": "r"}, headers)
    assert back.status_code == 200
    await assert_ledger(services, card, available=0, held=4_000)


async def test_a_single_load_card_takes_one_credit(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard
) -> None:
    issued = await issue_card("0", multiple_credits=False)
    url = f"/giftcards/{issued.card.card_id}/transactions"
    credit = {"operation": "Credit", "value": 5, "requestId": "a"}
    assert (await _post(hub, url, credit, headers)).status_code == 200
    again = await _post(hub, url, {**credit, "requestId": "b"}, headers)
    assert again.status_code == 422 and again.json()["code"] == "card-already-loaded"


async def test_an_expired_hold_is_released_as_a_cancellation_once(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    created = await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 60), headers)
    url = f"/giftcards/{card}/transactions/{created.json()['id']}"
    await _post(hub, f"{url}/settlements", {"value": 25, "requestId": "s"}, headers)

    assert await services.ledger.release_expired_holds() == 0  # not due yet
    later = utcnow() + timedelta(seconds=services.settings.giftcard_hold_seconds + 1)
    assert await services.ledger.release_expired_holds(now=later) == 1
    assert await services.ledger.release_expired_holds(now=later) == 0

    cancellations = (await hub.get(f"{url}/cancellations", headers=headers)).json()
    assert [item["value"] for item in cancellations] == [35]
    refused = await _post(hub, f"{url}/settlements", {"value": 1, "requestId": "late"}, headers)
    assert refused.status_code == 422
    await assert_ledger(services, card, available=7_500, held=0)


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "run_background_workers": True,
            "giftcard_hold_seconds": 1,
            "giftcard_expiry_poll_seconds": 0.1,
        }
    ],
    indirect=True,
)
async def test_the_background_worker_releases_expired_holds(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    issued = await issue_card("100")
    card = issued.card.card_id
    await _post(hub, f"/giftcards/{card}/transactions", debit(issued, 60), headers)
    for _ in range(50):
        if (await ledger_of(services, card))["held"] == 0:
            break
        await asyncio.sleep(0.1)
    await assert_ledger(services, card, available=10_000, held=0)


async def test_no_card_holds_more_than_the_largest_balance(
    hub: httpx.AsyncClient, headers: dict[str, str], issue_card: IssueCard, services: Services
) -> None:
    """Credits add up: without a bound on the balance, repeated large loads overflowed the
    64-bit column (a 500, found by the homologation suite's fuzzing)."""
    issued = await issue_card("0")
    url = f"/giftcards/{issued.card.card_id}/transactions"
    largest = {"operation": "Credit", "value": "10000000000000.00", "requestId": "a"}  # 10^15
    assert (await _post(hub, url, largest, headers)).status_code == 200
    more = await _post(hub, url, {**largest, "value": "0.01", "requestId": "b"}, headers)
    assert more.status_code == 422 and more.json()["code"] == "balance-limit"
    await assert_ledger(services, issued.card.card_id, available=10**15, held=0)
