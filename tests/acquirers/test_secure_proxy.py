"""A provider that is not PCI-certified: tokenized cards reach its core only through VTEX's
Secure Proxy, and neither tokens nor card data are ever stored or logged."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from connector.app import Services
from connector.db.tables import Payment
from connector.security import FieldCipher
from tests import payloads
from tests.acquirers.conftest import API_KEY, Core, Proxy
from tests.conftest import FAST, TABLES, MerchantCredentials


async def pay(
    client: httpx.AsyncClient, merchant: MerchantCredentials, body: dict[str, Any]
) -> httpx.Response:
    return await client.post("/payments", json=body, headers=merchant.headers)


async def database_text(services: Services) -> str:
    """Every row of every table, personal data decrypted: what an attacker with a dump sees."""
    dumped: list[str] = []
    async with services.database.reader() as session:
        for table in TABLES:
            rows = await session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
            dumped.extend(repr(tuple(row)) for row in rows)
        cipher = FieldCipher(services.settings.encryption_keys)
        for blob in await session.scalars(select(Payment.personal_data)):
            if blob is not None:
                dumped.append(repr(cipher.decrypt_json(blob)))
    return "\n".join(dumped)


async def test_a_tokenized_card_is_authorized_through_the_proxy(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    tokens = await proxy.tokenize(payloads.APPROVED_CARD)
    body = payloads.tokenized_payment(tokens, proxy.url)
    response = await pay(client, merchant, body)

    answer = response.json()
    assert response.status_code == 200 and answer["status"] == "approved"
    assert answer["authorizationId"].startswith("AUT-")
    assert answer["firstDigits"] == "444433" and answer["lastDigits"] is None
    # The connector sent tokens to the proxy, with the core's URL and key as Forward headers.
    [sent] = proxy.fake.received
    assert sent.headers["x-provider-forward-to"] == f"{core.url}/authorizations"
    assert sent.headers["x-provider-forward-api-key"] == API_KEY
    assert "api-key" not in sent.headers
    assert tokens["numberToken"] in sent.body and payloads.APPROVED_CARD not in sent.body
    # The core got the card data, never a token, and the key without its prefix.
    [authorize] = [r for r in core.fake.requests if r.path.endswith("/authorizations")]
    assert payloads.APPROVED_CARD in authorize.body and "#vtex#" not in authorize.body
    assert authorize.headers["api-key"] == API_KEY
    assert core.fake.effect_count("authorize") == 1


async def test_settlement_and_refund_go_to_the_core_directly(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.APPROVED_CARD), proxy.url)
    payment_id = body["paymentId"]
    assert (await pay(client, merchant, body)).json()["status"] == "approved"

    settled = await client.post(
        f"/payments/{payment_id}/settlements",
        json=payloads.settlement(payment_id, 31.9),
        headers=merchant.headers,
    )
    refunded = await client.post(
        f"/payments/{payment_id}/refunds",
        json=payloads.refund(payment_id, 10),
        headers=merchant.headers,
    )
    assert settled.json()["settleId"].startswith("CAP-")
    assert refunded.json()["refundId"].startswith("REF-")
    assert len(proxy.fake.received) == 1  # only the authorization carried card tokens
    assert core.fake.effect_count("capture") == 1 and core.fake.effect_count("refund") == 1


async def test_tokens_and_card_data_never_reach_the_database_or_the_logs(
    client: httpx.AsyncClient,
    merchant: MerchantCredentials,
    services: Services,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = await proxy.tokenize(payloads.APPROVED_CARD, holder="Jane Q Public", csc="4321")
    body = payloads.tokenized_payment(tokens, proxy.url)
    assert (await pay(client, merchant, body)).json()["status"] == "approved"
    denied = payloads.tokenized_payment(await proxy.tokenize(payloads.DENIED_CARD), proxy.url)
    assert (await pay(client, merchant, denied)).json()["status"] == "denied"

    stored = await database_text(services)
    logged = caplog.text
    secrets = [
        tokens["numberToken"],
        tokens["holderToken"],
        tokens["cscToken"],
        "#vtex#",
        payloads.APPROVED_CARD,
        payloads.DENIED_CARD,
        "Jane Q Public",
    ]
    for secret in secrets:
        assert secret not in stored, secret
        assert secret not in logged, secret
    # The CSC on its own: four digits also occur inside ids and hex digests, so as a value only.
    csc = re.compile(r"(?<![0-9A-Za-z-])4321(?![0-9A-Za-z-])")
    assert not csc.search(stored) and not csc.search(logged)
    assert "444433" in stored  # what may be kept: the BIN VTEX sent next to the tokens


async def test_the_cores_refusal_through_the_proxy_is_a_denial_with_its_code(
    client: httpx.AsyncClient, merchant: MerchantCredentials, proxy: Proxy
) -> None:
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.DENIED_CARD), proxy.url)
    answer = (await pay(client, merchant, body)).json()
    assert answer["status"] == "denied" and answer["code"] == "51"


async def test_a_forward_url_the_proxy_does_not_allow_is_a_clear_denial(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    proxy.fake.allowed_prefixes.clear()  # the acquirer URL was never allow-listed with VTEX
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.APPROVED_CARD), proxy.url)
    answer = (await pay(client, merchant, body)).json()
    assert answer["status"] == "denied" and answer["code"] == "secure-proxy-403"
    assert "allow-list" in answer["message"]
    assert core.fake.effect_count("authorize") == 0


async def test_tokens_the_proxy_does_not_recognize_are_a_clear_denial(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    tokens = await proxy.tokenize(payloads.APPROVED_CARD)
    tokens["numberToken"] = "#vtex#token#00000000#number#"  # expired, or from another vault
    answer = (await pay(client, merchant, payloads.tokenized_payment(tokens, proxy.url))).json()
    assert answer["status"] == "denied" and answer["code"] == "secure-proxy-400"
    assert core.fake.effect_count("authorize") == 0


@pytest.mark.parametrize("settings_overrides", [FAST], indirect=True)
async def test_a_proxy_failure_leaves_the_payment_pending_until_a_retry_authorizes_it_once(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    proxy.fake.fail_next(500)
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.APPROVED_CARD), proxy.url)
    first = (await pay(client, merchant, body)).json()
    assert first["status"] == "undefined"
    assert core.fake.effect_count("authorize") == 0

    # VTEX retries `undefined`; once the attempt is stale, the connector asks the core (never
    # seen), and only then authorizes, through the proxy again.
    await asyncio.sleep(1.0)  # FAST: an attempt is stale after 0.8 s
    retried = (await pay(client, merchant, body)).json()
    assert retried["status"] == "approved"
    assert core.fake.effect_count("authorize") == 1
    queries = [r for r in core.fake.requests if r.method == "GET"]
    assert len(queries) == 1 and len(proxy.fake.received) == 2


async def test_a_tokenized_card_without_a_proxy_url_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, merchant: MerchantCredentials, services: Services, proxy: Proxy
) -> None:
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.APPROVED_CARD), None)
    response = await pay(client, merchant, body)
    assert response.status_code == 400 and response.json()["code"] == "secure-proxy-missing"
    async with services.database.reader() as session:
        assert await session.scalar(select(Payment.id)) is None


async def test_a_proxy_url_off_the_allow_list_is_refused_before_anything_is_sent(
    client: httpx.AsyncClient, merchant: MerchantCredentials, proxy: Proxy
) -> None:
    # The connector would hand this host its core's API key: refused, never contacted.
    tokens = await proxy.tokenize(payloads.APPROVED_CARD)
    body = payloads.tokenized_payment(tokens, "https://attacker.example/proxy")
    response = await pay(client, merchant, body)
    assert response.status_code == 400
    assert response.json()["code"] == "secure-proxy-url-not-allowed"
    assert proxy.fake.received == []


async def test_test_suite_traffic_with_tokens_stays_in_the_sandbox(
    client: httpx.AsyncClient, merchant: MerchantCredentials, core: Core, proxy: Proxy
) -> None:
    # VTEX's Test Suite traffic never reaches the provider's core; a tokenized card there
    # follows the Redirect case, as in VTEX's own example connector.
    body = payloads.tokenized_payment(await proxy.tokenize(payloads.APPROVED_CARD), proxy.url)
    response = await client.post(
        "/payments", json=body, headers={**merchant.headers, **payloads.TEST_SUITE}
    )
    answer = response.json()
    assert answer["status"] == "undefined" and answer["redirectUrl"]
    assert proxy.fake.received == [] and core.fake.requests == []
