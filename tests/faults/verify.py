"""After a fault: what the gateway was told, what the database holds and what the provider's core
really did must agree. Each check returns the problems it found, so that a failure lists them
all."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from homologation.fakes.acquirer import FakeAcquirer
from tests.faults.cluster import CallbackReceiver
from tests.faults.gateway import Order

WIRE_STATUS = {"approved": "approved", "settled": "approved", "refunded": "approved",
               "denied": "denied", "cancelled": "denied"}  # fmt: skip


@dataclass
class PaymentRow:
    pk: str
    payment_id: str
    status: str
    settled_minor: int
    refunded_minor: int


@dataclass
class OutboxRow:
    payment_id: str
    status: str
    attempts: int


@dataclass
class Evidence:
    payments: dict[str, PaymentRow] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    # Gift cards: card id -> (available, held) in minor units, and each Debit's requestId
    # with its amount.
    giftcards: dict[str, tuple[int, int]] = field(default_factory=dict)
    debits: list[tuple[str, int]] = field(default_factory=list)


async def read_database(database_url: str) -> Evidence:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            payments = await connection.execute(
                text("SELECT id, payment_id, status, settled_minor, refunded_minor FROM payments")
            )
            outbox = await connection.execute(
                text(
                    "SELECT p.payment_id, o.status, o.attempts FROM outbox o "
                    "JOIN payments p ON p.id = o.payment_pk"
                )
            )
            evidence = Evidence()
            for pk, payment_id, status, settled, refunded in payments:
                row = PaymentRow(str(pk).replace("-", ""), payment_id, status, settled, refunded)
                evidence.payments[payment_id] = row
            evidence.outbox = [OutboxRow(*row) for row in outbox]
            cards = await connection.execute(
                text("SELECT card_id, available_minor, held_minor FROM giftcards")
            )
            evidence.giftcards = {card_id: (available, held) for card_id, available, held in cards}
            debits = await connection.execute(
                text(
                    "SELECT request_id, amount_minor FROM giftcard_transactions "
                    "WHERE operation = 'Debit'"
                )
            )
            evidence.debits = [(request_id, amount) for request_id, amount in debits]
            return evidence
    finally:
        await engine.dispose()


async def settle_down(database_url: str, timeout: float = 90) -> Evidence:
    """Waits until no payment is undecided and no callback is waiting, then reads everything."""
    deadline = time.monotonic() + timeout
    while True:
        evidence = await read_database(database_url)
        busy = [p for p in evidence.payments.values() if p.status in ("received", "pending")]
        waiting = [o for o in evidence.outbox if o.status == "pending"]
        if not busy and not waiting:
            return evidence
        if time.monotonic() > deadline:
            return evidence  # the checks name what is still open
        await asyncio.sleep(0.5)


def problems(
    orders: list[Order],
    evidence: Evidence,
    fake: FakeAcquirer,
    receiver: CallbackReceiver,
    *,
    redelivery_allowed: bool = False,
) -> list[str]:
    """Every way the run lost or doubled money, or a callback; empty when all is well.

    Callbacks are delivered at least once: a dispatcher killed after the receiver took a
    callback but before it recorded the delivery sends it again once its lease expires (VTEX
    reads a repeated callback as the same news). Only that fault may cause a second one."""
    found: list[str] = []
    by_pk = {row.pk: row for row in evidence.payments.values()}
    authorizations = Counter(e.reference for e in fake.effects if e.kind == "authorize")
    captured: dict[str, int] = defaultdict(int)
    refunded: dict[str, int] = defaultdict(int)
    for effect in fake.effects:
        if effect.kind == "capture":
            captured[effect.authorization_reference] += effect.amount
        elif effect.kind == "refund":
            refunded[effect.authorization_reference] += effect.amount

    # Nothing the core did is unknown to the database.
    for reference in authorizations:
        if reference.removeprefix("pay-") not in by_pk:
            found.append(f"the core authorized {reference}, which the database does not know")

    for order in orders:
        row = evidence.payments.get(order.payment_id)
        if row is None:
            found.append(f"{order.payment_id}: answered {order.answers} but not in the database")
            continue
        reference = f"pay-{row.pk}"
        # Authorized once, never twice (the fake core counts every authorization it performs).
        if authorizations[reference] != 1:
            found.append(f"{order.payment_id}: authorized {authorizations[reference]} times")
        final = order.answers[-1] if order.answers else None
        if final not in ("approved", "denied"):
            found.append(f"{order.payment_id}: the gateway never learnt an outcome ({final})")
        elif WIRE_STATUS.get(row.status) != final:
            found.append(f"{order.payment_id}: the gateway was told {final}, database {row.status}")
        if order.answers.count("approved") and "denied" in order.answers:
            found.append(f"{order.payment_id}: told both approved and denied: {order.answers}")
        # Money: what VTEX was told, what the database holds and what the core did agree.
        if (
            round(order.settled * 100) != row.settled_minor
            or captured[reference] != row.settled_minor
        ):
            found.append(
                f"{order.payment_id}: settled {order.settled} per VTEX, {row.settled_minor} in "
                f"the database, {captured[reference]} captured by the core"
            )
        if (
            round(order.refunded * 100) != row.refunded_minor
            or refunded[reference] != row.refunded_minor
        ):
            found.append(
                f"{order.payment_id}: refunded {order.refunded} per VTEX, {row.refunded_minor} "
                f"in the database, {refunded[reference]} at the core"
            )

    # Every callback written is delivered; every payment decided after `undefined` has one.
    for message in evidence.outbox:
        if message.status != "delivered":
            found.append(
                f"{message.payment_id}: callback {message.status} after {message.attempts}"
            )
    for order in orders:
        if order.first_status != "undefined":
            continue
        row = evidence.payments.get(order.payment_id)
        callbacks = receiver.for_payment(order.payment_id)
        if row is not None and not callbacks and not _first_heard_from_retry(order, row, fake):
            found.append(f"{order.payment_id}: answered undefined, decided, never called back")
        if len(callbacks) > 1 and not redelivery_allowed:
            found.append(f"{order.payment_id}: called back {len(callbacks)} times")
        for callback in callbacks:
            if row is not None and callback.body.get("status") != WIRE_STATUS.get(row.status):
                found.append(
                    f"{order.payment_id}: called back {callback.body.get('status')}, "
                    f"database {row.status}"
                )
    return found


def giftcard_problems(
    orders: list[Order], evidence: Evidence, card_id: str, initial_minor: int
) -> list[str]:
    """One Debit per requestId the Hub sent, each acknowledged one in the ledger, and the card's
    balance moved by exactly their sum: no debit lost, doubled or overspent."""
    found = []
    told = Counter(order.giftcard_debit for order in orders if order.giftcard_debit)
    recorded = Counter(request_id for request_id, _ in evidence.debits)
    for request_id, count in recorded.items():
        if count != 1 or request_id not in told:
            found.append(
                f"debit {request_id}: {count} in the ledger, acknowledged {told[request_id]}"
            )
    for request_id in told:
        if request_id not in recorded:
            found.append(f"debit {request_id}: acknowledged to the Hub, not in the ledger")
    held = sum(amount for _, amount in evidence.debits)
    available, card_held = evidence.giftcards[card_id]
    if (available, card_held) != (initial_minor - held, held):
        found.append(
            f"card {card_id}: available {available}, held {card_held}; the ledger says "
            f"{initial_minor - held} and {held}"
        )
    return found


def _first_heard_from_retry(order: Order, row: PaymentRow, fake: FakeAcquirer) -> bool:
    """The one excuse for an `undefined` payment never called back: the core first heard of it
    from VTEX's re-call of /payments (the request died before reaching the core, so only that
    re-call, which brings the card again, could authorize it, and its answer told VTEX)."""
    if order.learnt_by_retry_at is None:
        return False
    reference = f"pay-{row.pk}"
    for index, request in enumerate(fake.requests):
        if request.path == "/authorizations" and reference in request.body:
            return index >= order.learnt_by_retry_at
    return False


def summary(orders: list[Order], evidence: Evidence, fake: FakeAcquirer, receiver: CallbackReceiver,
            lost_requests: int) -> str:  # fmt: skip
    statuses = Counter(row.status for row in evidence.payments.values())
    first = Counter(order.first_status for order in orders)
    delivered = sum(1 for o in evidence.outbox if o.status == "delivered")
    per_payment = Counter(c.path for c in receiver.received)
    repeated = sum(count - 1 for count in per_payment.values())
    return (
        f"{len(orders)} orders; first answers {dict(first)}; database {dict(statuses)}; "
        f"{lost_requests} requests lost and sent again; core effects "
        f"{dict(Counter(e.kind for e in fake.effects))}; callbacks {delivered} delivered, "
        f"{len(receiver.received)} received ({repeated} repeats); "
        f"{sum(o.learnt_by_retry_at is not None for o in orders)} outcomes learnt only by "
        "re-calling /payments"
    )
