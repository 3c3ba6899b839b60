"""Load as VTEX's gateway sends it, with VTEX's persistence: a request that gets no answer (a
cut connection, a 5xx, a timeout) is sent again, unchanged, to whichever connector process the
load balancer picks next, until it gets one; a payment answered `undefined` is asked again
now and then (VTEX re-calls `/payments` for up to 7 days) until its callback or a final answer
arrives."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.faults.cluster import CallbackReceiver, Process
from tests.payloads import APPROVED_CARD, ASYNC_APPROVED_CARD, DENIED_CARD, create_payment

FINAL = ("approved", "denied")


@dataclass
class Order:
    """One payment as the gateway sees it."""

    payment_id: str
    kind: str  # card | card-async | bank-invoice | denied
    value: float
    answers: list[str] = field(default_factory=list)  # statuses of every POST /payments answer
    settled: float = 0.0
    refunded: float = 0.0
    giftcard_debit: str | None = None  # requestId of a Debit the Hub was told succeeded
    unanswered: list[str] = field(default_factory=list)  # why each lost attempt was lost
    # The outcome came from re-calling /payments, not from a callback; the core had received
    # this many requests when that re-call was sent (see verify.py).
    learnt_by_retry_at: int | None = None

    @property
    def first_status(self) -> str | None:
        return self.answers[0] if self.answers else None


@dataclass
class Gateway:
    """Sends orders round-robin to the serve processes that the test keeps alive."""

    serves: list[Process]
    headers: dict[str, str]
    receiver: CallbackReceiver
    retry_pause: float = 0.3
    # VTEX re-calls /payments for an `undefined` payment hourly (7-day window); scaled down, but
    # kept longer than a callback takes, so that callbacks, not retries, carry the outcomes.
    undefined_retry_seconds: float = 10.0
    give_up_after: float = 120.0
    # A gift card (as `connector giftcards issue` prints it) a fifth of the card orders also
    # pay 1.00 with, through the Gift Card Hub's Debit.
    giftcard: dict[str, Any] | None = None
    # How many requests the provider's core has received so far: a clock in the core's terms.
    core_requests: Callable[[], int] = lambda: 0
    orders: list[Order] = field(default_factory=list)
    lost_requests: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)

    def _next_url(self) -> str:
        # A load balancer stops sending to a process whose port is closed; VTEX's retry of a
        # cut request reaches whichever process is up.
        for _ in range(len(self.serves)):
            process = self.serves[next(self._turn) % len(self.serves)]
            if process.running:
                return process.url
        return self.serves[0].url

    async def _send(
        self,
        client: httpx.AsyncClient,
        order: Order,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST until a 200 (the protocol's only success); anything else is retried unchanged."""
        deadline = time.monotonic() + self.give_up_after
        while True:
            try:
                url = f"{self._next_url()}{path}"
                response = await client.post(url, json=body, headers=headers)
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                order.unanswered.append(f"{path}: {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as error:
                order.unanswered.append(f"{path}: {error!r}")
            self.lost_requests += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"{order.payment_id}: no answer to {path} in time")
            await asyncio.sleep(self.retry_pause)

    async def place(self, client: httpx.AsyncClient, kind: str, value: float) -> Order:
        card = {"card": APPROVED_CARD, "card-async": ASYNC_APPROVED_CARD, "denied": DENIED_CARD}
        body = create_payment(card_number=card.get(kind, APPROVED_CARD), value=value)
        if kind == "bank-invoice":
            body["paymentMethod"], body["card"] = "BankInvoice", None
        order = Order(body["paymentId"], kind, value)
        body["callbackUrl"] = self.receiver.url_for(order.payment_id)
        self.orders.append(order)
        if self.giftcard is not None and kind == "card" and int(order.payment_id[2:4], 16) % 5 == 0:
            await self._debit_giftcard(client, order)
        answer = await self._send(client, order, "/payment-provider/payments", body)
        order.answers.append(answer["status"])
        if answer["status"] == "undefined":
            await self._await_outcome(client, order, body)
        if order.answers[-1] == "approved" and kind == "card":
            await self._settle_and_maybe_refund(client, order)
        return order

    async def _debit_giftcard(self, client: httpx.AsyncClient, order: Order) -> None:
        """The Hub's Debit, retried with its requestId until answered, as the Hub does."""
        assert self.giftcard is not None
        request_id = uuid.uuid4().hex.upper()
        body = {
            "operation": "Debit",
            "value": 1.0,
            "description": "GiftCardHub",
            "redemptionToken": self.giftcard["redemptionToken"],
            "redemptionCode": self.giftcard["redemptionCode"],
            "requestId": request_id,
            "orderInfo": {"orderId": order.payment_id, "sequence": 1},
        }
        path = f"/giftcard/giftcards/{self.giftcard['id']}/transactions"
        headers = {
            "X-PROVIDER-API-AppKey": self.headers["X-VTEX-API-AppKey"],
            "X-PROVIDER-API-AppToken": self.headers["X-VTEX-API-AppToken"],
        }
        await self._send(client, order, path, body, headers)
        order.giftcard_debit = request_id

    async def _await_outcome(
        self, client: httpx.AsyncClient, order: Order, body: dict[str, Any]
    ) -> None:
        """VTEX waits for the callback and also re-calls /payments from time to time."""
        deadline = time.monotonic() + self.give_up_after
        while time.monotonic() < deadline:
            for callback in self.receiver.for_payment(order.payment_id):
                if callback.body.get("status") in FINAL:
                    order.answers.append(callback.body["status"])
                    return
            await asyncio.sleep(self.undefined_retry_seconds)
            for callback in self.receiver.for_payment(order.payment_id):
                if callback.body.get("status") in FINAL:
                    order.answers.append(callback.body["status"])
                    return
            order.learnt_by_retry_at = self.core_requests()
            answer = await self._send(client, order, "/payment-provider/payments", body)
            if answer["status"] in FINAL:
                order.answers.append(answer["status"])
                return
        raise TimeoutError(f"{order.payment_id} still undefined after {self.give_up_after} s")

    async def _settle_and_maybe_refund(self, client: httpx.AsyncClient, order: Order) -> None:
        path = f"/payment-provider/payments/{order.payment_id}"
        settle = {"paymentId": order.payment_id, "requestId": uuid.uuid4().hex,
                  "value": order.value}  # fmt: skip
        answer = await self._send(client, order, f"{path}/settlements", settle)
        order.settled = float(answer["value"])
        if int(order.payment_id[:2], 16) % 3 == 0:  # a third of them, deterministically
            refund = {"paymentId": order.payment_id, "requestId": uuid.uuid4().hex,
                      "value": round(order.value / 2, 2)}  # fmt: skip
            answer = await self._send(client, order, f"{path}/refunds", refund)
            order.refunded = float(answer["value"])

    async def run(self, orders: int, rate: float) -> list[Order]:
        """`orders` orders started at `rate` per second (open loop), each followed through."""
        kinds = ["card"] * 6 + ["card-async"] * 2 + ["bank-invoice", "denied"]
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
        async with httpx.AsyncClient(
            headers=self.headers, timeout=httpx.Timeout(20.0), limits=limits
        ) as client:
            tasks = []
            for number in range(orders):
                kind = kinds[number % len(kinds)]
                value = round(10 + (number % 50) + 0.25, 2)
                tasks.append(asyncio.create_task(self.place(client, kind, value)))
                await asyncio.sleep(1 / rate)
            return list(await asyncio.gather(*tasks))
