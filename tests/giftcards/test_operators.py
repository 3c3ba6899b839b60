"""Operators issue, load, block and inspect cards: `connector giftcards ...` and the admin API.
Codes are shown in full once, when issued, and stored only as a hash."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text, update
from starlette.applications import Starlette

from connector.app import Services
from connector.db.tables import GiftCard, GiftCardTransaction, utcnow
from connector.security import redemption_code_digest
from tests.cli_support import run
from tests.conftest import MerchantCredentials
from tests.giftcards.conftest import debit, hub_headers

ADMIN_TOKEN = "s3cret-admin-token-for-tests"
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Operator": "ana@provider.example"}


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest) -> dict[str, object]:
    """This module's settings: the admin API on, unless a test says otherwise."""
    return {"admin_token": ADMIN_TOKEN, **getattr(request, "param", {})}


@pytest.fixture
async def admin(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver/admin") as http:
        yield http


async def test_issue_load_block_and_inspect_through_the_admin_api(
    admin: httpx.AsyncClient,
    hub: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
) -> None:
    issued = await admin.post(
        "/giftcards",
        headers=ADMIN,
        json={
            "merchant": merchant.name,
            "amount": 80,
            "currency": "BRL",
            "profileId": "ana@example.com",
            "caption": "Welcome",
        },
    )
    assert issued.status_code == 201, issued.text
    card = issued.json()
    code = card["redemptionCode"]
    assert len(code) == 19 and card["available"] == 80 and card["status"] == "active"

    # Stored as a hash and a last group only.
    async with services.database.reader() as session:
        row = await session.scalar(select(GiftCard).where(GiftCard.card_id == card["id"]))
        dump = " ".join(
            str(v) for v in (await session.execute(text("SELECT * FROM giftcards"))).one()
        )
    assert row is not None and row.code_digest == redemption_code_digest(code)
    assert code not in dump and code.replace("-", "") not in dump
    assert "ana@example.com" not in dump  # the owner is encrypted

    loaded = await admin.post(
        f"/giftcards/{card['id']}/credits",
        headers=ADMIN,
        json={"amount": 20, "reason": "apology", "requestId": "ticket-1"},
    )
    assert loaded.status_code == 201 and loaded.json()["card"]["available"] == 100
    again = await admin.post(
        f"/giftcards/{card['id']}/credits",
        headers=ADMIN,
        json={"amount": 20, "reason": "apology", "requestId": "ticket-1"},
    )
    assert again.json()["card"]["available"] == 100  # the retried load counted once

    blocked = await admin.post(
        f"/giftcards/{card['id']}/block", headers=ADMIN, json={"reason": "reported stolen"}
    )
    assert blocked.json()["status"] == "blocked"
    assert blocked.json()["statusReason"] == "ana@provider.example: reported stolen"
    listed = await admin.get("/giftcards", params={"status": "blocked"}, headers=ADMIN)
    assert [c["id"] for c in listed.json()] == [card["id"]]
    assert listed.json()[0]["redemptionCode"] == "****-****-****-" + code[-4:]
    await admin.post(f"/giftcards/{card['id']}/unblock", headers=ADMIN, json={"reason": "found"})

    report = (await admin.get(f"/giftcards/{card['id']}", headers=ADMIN)).json()
    assert report["ledger"] == {"available": 100, "held": 0, "consistent": True}
    assert report["owner"] == "ana@example.com"
    assert [e["kind"] for e in report["entries"]] == ["credit", "credit"]
    assert report["entries"][1]["note"] == "ana@provider.example: apology"
    assert code not in json.dumps(report)

    # The Hub sees the card and its code works at checkout.
    search = {"client": {}, "cart": {"redemptionCode": code}}
    found = await hub.post("/giftcards/_search", json=search, headers=hub_headers(merchant))
    assert [(c["id"], c["balance"]) for c in found.json()] == [(card["id"], 100)]


async def test_bulk_issue_validates_every_row_first(
    admin: httpx.AsyncClient, merchant: MerchantCredentials, services: Services
) -> None:
    rows = [{"amount": 10}, {"amount": 20, "currency": "USD", "expiringDate": "2036-01-01"}]
    issued = await admin.post(
        "/giftcards/batch", headers=ADMIN, json={"merchant": merchant.name, "cards": rows}
    )
    assert issued.status_code == 201
    assert [(c["available"], c["currency"]) for c in issued.json()] == [(10, "BRL"), (20, "USD")]
    assert len({c["redemptionCode"] for c in issued.json()}) == 2

    bad = [{"amount": 10}, {"amount": 1.001}]
    refused = await admin.post(
        "/giftcards/batch", headers=ADMIN, json={"merchant": merchant.name, "cards": bad}
    )
    assert refused.status_code == 400 and "row 2" in refused.json()["message"]
    typo = await admin.post(
        "/giftcards", headers=ADMIN, json={"merchant": merchant.name, "ammount": 10}
    )
    assert typo.status_code == 400
    assert len(await services.giftcards.list(None, None, 0, 100)) == 2


@pytest.mark.parametrize(
    "auth", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": ADMIN_TOKEN}]
)
async def test_the_admin_api_needs_its_token(
    admin: httpx.AsyncClient, merchant: MerchantCredentials, auth: dict[str, str]
) -> None:
    response = await admin.post(
        "/giftcards", headers=auth, json={"merchant": merchant.name, "amount": 10}
    )
    assert response.status_code == 401 and response.json()["code"] == "invalid-admin-token"
    assert (await admin.get("/giftcards", headers=auth)).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "limit=%C2%B2",
        "offset=%D9%A3",
        "limit=1001",
        "limit=-1",
        "merchant=%00",
        "merchant=" + "m" * 101,
    ],  # fmt: skip
)
async def test_list_queries_are_checked_before_use(admin: httpx.AsyncClient, query: str) -> None:
    """`²` and `٣` are digits to `str.isdigit` but not to `int`; PostgreSQL refuses a NUL."""
    response = await admin.get(f"/giftcards?{query}", headers=ADMIN)
    assert response.status_code == 400, response.text
    assert response.json()["code"] in {"invalid-query", "invalid-merchant"}


@pytest.mark.parametrize("settings_overrides", [{"admin_token": None}], indirect=True)
async def test_without_a_token_the_admin_api_is_off(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/giftcards", headers=ADMIN)
    assert response.status_code == 401 and response.json()["code"] == "admin-api-disabled"


# ----------------------------------------------------------------------------- the CLI


async def test_the_cli_issues_from_a_csv_file_and_inspects(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    merchant: MerchantCredentials,
    hub: httpx.AsyncClient,
) -> None:
    source = environment / "cards.csv"
    source.write_text(
        "amount,currency,profileId,restrictedToOwner,caption,expiringDate,multipleRedemptions\n"
        "25.00,,maria@example.com,true,Loyalty,2036-12-31T23:59:59Z,\n"
        "10,USD,,,,,false\n"
    )
    out_file = environment / "codes.csv"
    code, _, err = await run(
        capsys,
        "giftcards",
        "issue",
        "--merchant",
        merchant.name,
        "--csv",
        str(source),
        "--out",
        str(out_file),
    )
    assert code == 0, err
    written = out_file.read_text().splitlines()
    assert written[0].startswith("id,merchant,status") and len(written) == 3
    first_id = written[1].split(",")[0]

    code, out, _ = await run(capsys, "giftcards", "show", first_id)
    report = json.loads(out)
    assert report["card"]["available"] == 25 and report["card"]["restrictedToOwner"] is True
    assert report["owner"] == "maria@example.com" and report["ledger"]["consistent"] is True

    code, out, _ = await run(capsys, "giftcards", "credit", first_id, "5.50", "--reason", "bonus")
    assert code == 0
    code, out, _ = await run(capsys, "giftcards", "block", first_id, "--reason", "fraud")
    assert json.loads(out)["status"] == "blocked"
    code, out, _ = await run(capsys, "giftcards", "list", "--merchant", merchant.name)
    listed = {c["id"]: c for c in json.loads(out)}
    assert listed[first_id]["available"] == 30.5 and listed[first_id]["status"] == "blocked"
    single = [c for c in listed.values() if c["currency"] == "USD"]
    assert single[0]["multipleRedemptions"] is False


async def test_the_cli_refuses_a_bad_csv_without_issuing_anything(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    merchant: MerchantCredentials,
    services: Services,
) -> None:
    source = environment / "cards.csv"
    source.write_text("amount,colour\n10,blue\n")
    code, _, err = await run(
        capsys, "giftcards", "issue", "--merchant", merchant.name, "--csv", str(source)
    )
    assert code == 1 and "row 1" in err and "colour" in err
    code, _, err = await run(capsys, "giftcards", "issue", "--merchant", "nobody", "--amount", "5")
    assert code == 1 and "no merchant" in err
    assert await services.giftcards.list(None, None, 0, 10) == []


async def test_the_cli_issues_one_card_and_releases_expired_holds(
    environment: Path,
    capsys: pytest.CaptureFixture[str],
    merchant: MerchantCredentials,
    hub: httpx.AsyncClient,
    services: Services,
) -> None:
    code, out, err = await run(
        capsys, "giftcards", "issue", "--merchant", merchant.name, "--amount", "40", "--single-use"
    )
    assert code == 0, err
    (card,) = json.loads(out)
    assert card["multipleRedemptions"] is False and card["available"] == 40
    issued = await services.giftcards.report(card["id"])
    from connector.giftcards.cards import IssuedCard

    held = debit(IssuedCard(issued.card, card["redemptionCode"]), 15, uuid.uuid4().hex)
    response = await hub.post(
        f"/giftcards/{card['id']}/transactions", json=held, headers=hub_headers(merchant)
    )
    assert response.status_code == 200
    code, out, _ = await run(capsys, "giftcards", "expire-holds")
    assert code == 0 and out.strip() == "released 0 expired holds"  # due in a week
    async with services.database.writer() as session:
        await session.execute(
            update(GiftCardTransaction)
            .where(GiftCardTransaction.operation == "Debit")
            .values(hold_expires_at=utcnow() - timedelta(seconds=1))
        )
    code, out, _ = await run(capsys, "giftcards", "expire-holds")
    assert code == 0 and out.strip() == "released 1 expired holds"
    assert (await services.giftcards.report(card["id"])).card.held_minor == 0


async def test_the_readme_csv_example_issues_cards(
    environment: Path, capsys: pytest.CaptureFixture[str], merchant: MerchantCredentials
) -> None:
    example = README.split("```csv\n", 1)[1].split("```", 1)[0]
    source = environment / "cards.csv"
    source.write_text(example)
    code, out, err = await run(
        capsys, "giftcards", "issue", "--merchant", merchant.name, "--csv", str(source)
    )
    assert code == 0, err
    assert [(c["available"], c["currency"]) for c in json.loads(out)] == [(25, "BRL"), (10, "USD")]


async def test_operators_load_within_the_hubs_bounds(
    admin: httpx.AsyncClient, merchant: MerchantCredentials
) -> None:
    """Huge operator loads gave a 500 once the card's balance overflowed (homologation fuzzing)."""
    huge = await admin.post(
        "/giftcards", headers=ADMIN, json={"merchant": merchant.name, "amount": 1e16}
    )
    assert huge.status_code == 400 and huge.json()["code"] == "invalid-amount"
    issued = await admin.post(
        "/giftcards", headers=ADMIN, json={"merchant": merchant.name, "amount": 0}
    )
    assert issued.status_code == 201, issued.text
    url = f"/giftcards/{issued.json()['id']}/credits"
    credit = {"amount": 9007199254740992.0, "reason": "fuzzed"}
    too_big = await admin.post(url, headers=ADMIN, json=credit)
    assert too_big.status_code == 400 and too_big.json()["code"] == "invalid-amount"
    largest = {"amount": "10000000000000", "reason": "the largest load"}
    assert (await admin.post(url, headers=ADMIN, json=largest)).status_code == 201
    more = await admin.post(url, headers=ADMIN, json={"amount": 0.01, "reason": "one more"})
    assert more.status_code == 422 and more.json()["code"] == "balance-limit"
    # A refused load names its reason (it was a 500: the card came from another session).
    blocked = await admin.post(
        url.replace("/credits", "/block"), headers=ADMIN, json={"reason": "lost"}
    )
    assert blocked.status_code == 200, blocked.text
    refused = await admin.post(url, headers=ADMIN, json={"amount": 1, "reason": "after"})
    assert refused.status_code == 422 and refused.json()["code"] == "card-blocked"
