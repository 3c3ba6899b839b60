"""No full PAN, CVV or expiry in the database or the logs; buyer data encrypted at rest."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import text

from connector.app import Services
from connector.security import FieldCipher, mask_card_data
from tests import payloads
from tests.conftest import MerchantCredentials, sqlite_file

PAN = "4111111111111111"
SECRETS = [
    PAN,
    "4444333322221111",
    "john.doe@example.com",
    "01234567890",
    "39295416023",
    "Praia de Botafogo",
    "+5521999999999",
    "187.105.111.65",
    "John Doe",
]


async def database_text(services: Services, database_url: str) -> str:
    """Everything the database holds, as text (files on SQLite, every row on PostgreSQL)."""
    if database_url.startswith("sqlite"):
        path = sqlite_file(database_url)
        return "".join(
            candidate.read_bytes().decode("latin-1")
            for candidate in (path, path.with_name(path.name + "-wal"))
            if candidate.exists()
        )
    rows = []
    async with services.database.reader() as session:
        for table in ("merchants", "payments", "payment_operations", "sandbox_acquirer_calls"):
            result = await session.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))  # noqa: S608
            rows.extend(str(row[0]) for row in result)
    return "\n".join(rows)


async def test_no_card_or_personal_data_in_database_or_logs(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    for number in (PAN, "4444333322221111"):
        body = payloads.create_payment(card_number=number)
        body["card"]["csc"] = "987"
        response = await client.post(
            "/payments", json=body, headers={**merchant.headers, **payloads.TEST_SUITE}
        )
        assert response.json()["status"] == "approved"
        await client.post(
            f"/payments/{body['paymentId']}/settlements",
            json=payloads.settlement(body["paymentId"], 31.9),
            headers=merchant.headers,
        )
        # A broken request that carries the card must not echo it either.
        broken = {**body, "value": "not a number"}
        bad = await client.post("/payments", json=broken, headers=merchant.headers)
        assert bad.status_code == 400 and number not in bad.text

    stored = await database_text(services, database_url)
    for secret in SECRETS:
        assert secret not in stored, f"{secret!r} is stored in clear"
    assert "411111" in stored and "1111" in stored  # BIN and last four are kept
    for secret in (PAN, "4444333322221111"):
        assert secret not in caplog.text


async def test_personal_data_is_encrypted_and_readable_with_the_key(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
):
    body = payloads.create_payment()
    await client.post("/payments", json=body, headers=merchant.headers)
    async with services.database.reader() as session:
        blob = (await session.execute(text("SELECT personal_data FROM payments"))).scalar_one()
    cipher = FieldCipher(services.settings.encryption_keys)
    data = cipher.decrypt_json(bytes(blob))
    assert data["buyer"]["email"] == "john.doe@example.com"
    assert data["cardHolder"] == "John Doe"
    assert PAN not in str(data) and "987" not in str(data) and "expiration" not in str(data)


def test_log_records_are_masked_whatever_the_handler(caplog: pytest.LogCaptureFixture):
    from connector.observability import configure_logging

    configure_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    logging.getLogger("anything.at.all").warning(
        "card %s cvv %s", "4111 1111 1111 1111", '{"csc": "123"}'
    )
    assert "4111 1111 1111 1111" not in caplog.text
    assert "411111******1111" in caplog.text
    assert '"csc": "***"' in caplog.text


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("pan=4111111111111111.", "pan=411111******1111."),
        ("4111-1111-1111-1111", "411111******1111"),
        ("5555 5555 5555 4444 ok", "555555******4444 ok"),
        # Any card-length run of digits is masked: a false positive costs nothing in a log.
        ("order 1072430428324", "order 107243******8324"),
        ('{"cvv":"999"}', '{"cvv":"***"}'),
    ],
)
def test_mask_card_data(raw: str, masked: str):
    assert mask_card_data(raw) == masked


async def test_key_rotation_reencrypts_every_row(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
):
    from cryptography.fernet import Fernet
    from pydantic import SecretStr

    from connector.giftcards.cards import IssueOrder
    from connector.keys import reencrypt_personal_data

    for _ in range(3):
        await client.post("/payments", json=payloads.create_payment(), headers=merchant.headers)
    found = await services.merchants.by_name(merchant.name)
    assert found is not None
    await services.giftcards.issue(found, IssueOrder(profile_id="ana@example.com"))
    from protocol.antifraud import AnalysisRequest
    from tests.antifraud.conftest import order

    await services.antifraud.analyse(
        found, AnalysisRequest.model_validate(order()), test_suite=False
    )
    new_key = SecretStr(Fernet.generate_key().decode())
    both = FieldCipher([new_key, *services.settings.encryption_keys])
    assert await reencrypt_personal_data(services.database, both) == 5
    only_new = FieldCipher([new_key])
    async with services.database.reader() as session:
        blobs = (await session.execute(text("SELECT personal_data FROM payments"))).scalars()
        emails = {only_new.decrypt_json(bytes(blob))["buyer"]["email"] for blob in blobs}
        owners = (await session.execute(text("SELECT owner FROM giftcards"))).scalars()
        owner_names = {only_new.decrypt_json(bytes(blob)) for blob in owners}
        orders = await session.execute(text("SELECT order_data FROM antifraud_analyses"))
        buyers = {only_new.decrypt_json(bytes(blob))["miniCart"]["buyer"]["email"]
                  for blob in orders.scalars()}  # fmt: skip
    assert buyers == {"john.doe@example.com"}
    assert emails == {"john.doe@example.com"}
    assert owner_names == {"ana@example.com"}


def test_callback_urls_with_their_signature_are_not_logged_by_httpx():
    from connector.observability import configure_logging

    configure_logging("DEBUG")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
