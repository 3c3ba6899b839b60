"""No overspend and one effect per requestId across processes: two `connector serve` processes
share the database and take the Hub's requests at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from connector.app import Services
from connector.db.tables import GiftCardOperation, GiftCardTransaction
from tests.conftest import MerchantCredentials
from tests.giftcards.conftest import IssueCard, assert_ledger, debit, hub_headers, ledger_of
from tests.servers import fire

pytestmark = pytest.mark.slow


async def _fire(
    urls: list[str], path: str, bodies: list[dict[str, Any]], headers: dict[str, str]
) -> list[httpx.Response]:
    return await fire(urls, f"/giftcard{path}", bodies, headers)


async def test_fifty_debits_at_a_card_that_can_pay_ten(
    two_servers: list[str],
    merchant: MerchantCredentials,
    issue_card: IssueCard,
    services: Services,
) -> None:
    issued = await issue_card("100.00")
    card_id = issued.card.card_id
    bodies = [debit(issued, 10) for _ in range(50)]

    responses = await _fire(
        two_servers, f"/giftcards/{card_id}/transactions", bodies, hub_headers(merchant)
    )

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10, statuses
    assert statuses.count(422) == 40, statuses
    assert {r.json()["code"] for r in responses if r.status_code == 422} == {"insufficient-balance"}
    await assert_ledger(services, card_id, available=0, held=10_000)
    async with services.database.reader() as session:
        holds = await session.scalar(
            select(func.count())
            .select_from(GiftCardTransaction)
            .where(GiftCardTransaction.operation == "Debit")
        )
    assert holds == 10


async def test_repeats_of_one_request_racing_on_two_processes_debit_once(
    two_servers: list[str],
    merchant: MerchantCredentials,
    issue_card: IssueCard,
    services: Services,
) -> None:
    issued = await issue_card("100.00")
    card_id = issued.card.card_id
    body = debit(issued, 30, request_id="B56CBE231DEE4E1A859183C1030CE926")

    responses = await _fire(
        two_servers, f"/giftcards/{card_id}/transactions", [body] * 20, hub_headers(merchant)
    )

    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.json()["id"] for r in responses}) == 1
    assert (await ledger_of(services, card_id))["available"] == 7_000


async def test_settlements_and_cancellations_racing_never_exceed_the_hold(
    two_servers: list[str],
    merchant: MerchantCredentials,
    issue_card: IssueCard,
    services: Services,
) -> None:
    issued = await issue_card("100.00")
    card_id = issued.card.card_id
    headers = hub_headers(merchant)
    created = await _fire(
        two_servers, f"/giftcards/{card_id}/transactions", [debit(issued, 50)], headers
    )
    transaction_id = created[0].json()["id"]
    url = f"/giftcards/{card_id}/transactions/{transaction_id}"

    # 20 settlements of 5 and 20 cancellations of 5 race for a hold of 50, plus repeats.
    settle_bodies = [{"value": 5, "requestId": uuid.uuid4().hex} for _ in range(20)]
    cancel_bodies = [{"value": 5, "requestId": uuid.uuid4().hex} for _ in range(20)]
    repeated = [{"value": 5, "requestId": "same"}] * 10
    settled, cancelled, repeats = await asyncio.gather(
        _fire(two_servers, f"{url}/settlements", settle_bodies, headers),
        _fire(two_servers, f"{url}/cancellations", cancel_bodies, headers),
        _fire(two_servers, f"{url}/settlements", repeated, headers),
    )

    assert {r.status_code for r in settled + cancelled + repeats} <= {200, 422}
    assert len({r.json()["oid"] for r in repeats if r.status_code == 200}) <= 1
    async with services.database.reader() as session:
        transaction = await session.scalar(
            select(GiftCardTransaction).where(GiftCardTransaction.transaction_id == transaction_id)
        )
        operations = list(await session.scalars(select(GiftCardOperation)))
    assert transaction is not None
    settled_minor = sum(
        o.amount_minor
        for o in operations
        if o.kind == "settlement" and o.transaction_pk == transaction.id
    )
    cancelled_minor = sum(o.amount_minor for o in operations if o.kind == "cancellation")
    assert settled_minor == transaction.settled_minor
    assert cancelled_minor == transaction.released_minor + transaction.refunded_minor
    # Cancellations may refund what was settled, but nothing beyond the 50 ever moves.
    assert transaction.settled_minor + transaction.released_minor <= 5_000
    assert cancelled_minor <= 5_000
    totals = await ledger_of(services, card_id)
    assert totals["available"] == totals["ledger_available"]
    assert totals["held"] == totals["ledger_held"]
    assert totals["available"] == 5_000 + cancelled_minor
