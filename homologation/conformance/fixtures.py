"""The payment, card and analysis a run makes first, over plain HTTP, for realistic requests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from homologation.conformance.config import (
    CALLBACK_URL,
    CARD_CREDIT,
    CARD_DEBIT,
    PAYMENT_IDS,
    SUITE,
    TEST_SUITE_HEADER,
)
from homologation.conformance.state import RunState, _json, exchange_of_httpx
from homologation.report import Scenario


def _fresh() -> str:
    return uuid.uuid4().hex.upper()


def payment_body(
    payment_id: str, value: float, card: str | None = "4444333322221111"
) -> dict[str, Any]:
    """A POST /payments body as VTEX's gateway sends it (card None: a bank invoice)."""
    transaction = uuid.uuid5(uuid.NAMESPACE_OID, payment_id).hex.upper()
    return {
        "reference": payment_id[:10],
        "orderId": f"v{payment_id[:8]}hml-01",
        "transactionId": transaction,
        "paymentId": payment_id,
        "paymentMethod": "Visa" if card else "BankInvoice",
        "card": {
            "holder": "John Doe" if card else None,
            "number": card,
            "csc": "123" if card else None,
            "expiration": {"month": "12" if card else None, "year": "2030" if card else None},
        },
        "value": value,
        "currency": "BRL",
        "installments": 1,
        "callbackUrl": CALLBACK_URL.format(transaction=transaction, payment=payment_id),
    }


class FixtureMaker:
    """Plain HTTP calls, each a check of the fixtures scenario."""

    def __init__(self, state: RunState, scenario: Scenario) -> None:
        self.state = state
        self.scenario = scenario
        options = state.options
        self.base = options.base_url.rstrip("/")

    def call(
        self, name: str, method: str, url: str, headers: Mapping[str, str], body: Any = None
    ) -> Any:
        """The JSON answer, or None (then a failed check says why)."""
        started = time.perf_counter()
        try:
            response = self.state.http.request(
                method, self.base + url, headers=dict(headers), json=body
            )
        except httpx.HTTPError as error:
            self.scenario.failed(name, f"{type(error).__name__}: {error}")
            return None
        exchange = exchange_of_httpx(response, time.perf_counter() - started)
        self.scenario.exchanges.append(exchange)
        answer = _json(response.content)
        if response.status_code != 200 or not isinstance(answer, dict):
            self.scenario.failed(
                name,
                f"answered {response.status_code}; the requests meant for it are sent anyway",
                exchange,
            )
            return None
        self.scenario.passed(name, exchange.summary)
        return answer


def make_fixtures(state: RunState) -> Scenario | None:
    """What about half of the fuzzed requests are made on: a payment, a card, an analysis."""
    group = state.group
    if group.name not in ("payments", "giftcards", "antifraud"):
        return None
    phases = set(state.options.phases) & {"fuzzing", "stateful"}
    if not phases:
        return None
    scenario = Scenario(SUITE, f"{group.name}: fixtures", "what realistic requests are made on")
    started = time.monotonic()
    maker = FixtureMaker(state, scenario)
    key, token = state.options.app_key, state.options.app_token
    fixtures = state.fixtures
    if group.name == "payments":
        headers = {
            "X-VTEX-API-AppKey": key,
            "X-VTEX-API-AppToken": token,
            TEST_SUITE_HEADER: "true",
        }
        for attribute, what in (
            ("payment_id", "settle and refund"),
            ("cancel_payment_id", "cancel"),
        ):
            payment_id = _fresh()
            answer = maker.call(
                f"an approved payment to {what}",
                "POST",
                "/payment-provider/payments",
                headers,
                payment_body(payment_id, 1000.0),
            )
            if answer is not None and answer.get("status") == "approved":
                setattr(fixtures, attribute, payment_id)
                with state.lock:
                    payment = state.payments[payment_id]
                    payment.fresh = True
                    payment.values.add(Decimal("1000.0"))
                    payment.status = "approved"
                    payment.ids = {name: answer.get(name) for name in PAYMENT_IDS}
                    payment.first = ("4444333322221111", True, "Visa")
                    payment.replayed = True
    elif group.name == "giftcards":
        headers = {"X-PROVIDER-API-AppKey": key, "X-PROVIDER-API-AppToken": token}
        card = maker.call(
            "a card",
            "POST",
            "/giftcard/giftcards",
            headers,
            {"relationName": f"homologation-{_fresh()[:8]}", "caption": "homologation"},
        )
        if card is not None and isinstance(card.get("id"), str):
            fixtures.card_id = card["id"]
            fixtures.card_token = card.get("redemptionToken")
            fixtures.card_code = card.get("redemptionCode")
            credited = maker.call(
                f"{CARD_CREDIT} loaded on it",
                "POST",
                f"/giftcard/giftcards/{fixtures.card_id}/transactions",
                headers,
                {"operation": "Credit", "value": CARD_CREDIT, "requestId": _fresh()},
            )
            for attribute, what in (
                ("settle_transaction_id", "settle"),
                ("cancel_transaction_id", "cancel"),
            ):
                debit = credited and maker.call(
                    f"a Debit of {CARD_DEBIT} on it, to {what}",
                    "POST",
                    f"/giftcard/giftcards/{fixtures.card_id}/transactions",
                    headers,
                    {
                        "operation": "Debit",
                        "value": CARD_DEBIT,
                        "requestId": _fresh(),
                        "redemptionToken": fixtures.card_token,
                        "redemptionCode": fixtures.card_code,
                        "description": "homologation",
                    },
                )
                if isinstance(debit, dict) and isinstance(debit.get("id"), str):
                    setattr(fixtures, attribute, debit["id"])
    else:
        headers = {"X-PROVIDER-API-AppKey": key, "X-PROVIDER-API-AppToken": token}
        analysis_id = _fresh()
        answer = maker.call(
            "an analysis to read, update and stop",
            "POST",
            "/antifraud/transactions",
            headers,
            {"id": analysis_id, "value": 100, "reference": "homologation"},
        )
        if answer is not None:
            fixtures.analysis_id = analysis_id
    scenario.seconds = time.monotonic() - started
    return scenario
