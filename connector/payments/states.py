"""The payment state machine. Every status change in the service goes through `transition`.

    received ──authorize──► approved ──settle──► settled ──refund──► refunded
        │                      │  └──cancel──► cancelled        (refund again while
        ├──► denied            │                                 refunded < settled)
        └──► pending ──────────┘  (a later answer of the acquirer)
              ├──► denied
              └──cancel──► cancelled

`received` is the claim taken before the acquirer is called; `pending` is an authorization whose
outcome is not known yet (the acquirer said so, or did not answer in time). Settling more, up to
the limit, keeps a payment `settled`; refunding more, up to what was settled, keeps it `refunded`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from connector.errors import InvalidTransition


class PaymentState(StrEnum):
    RECEIVED = "received"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    SETTLED = "settled"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


S = PaymentState

TRANSITIONS: dict[PaymentState, frozenset[PaymentState]] = {
    S.RECEIVED: frozenset({S.APPROVED, S.DENIED, S.PENDING}),
    S.PENDING: frozenset({S.APPROVED, S.DENIED, S.CANCELLED}),
    S.APPROVED: frozenset({S.SETTLED, S.CANCELLED}),
    S.SETTLED: frozenset({S.SETTLED, S.REFUNDED}),
    S.REFUNDED: frozenset({S.REFUNDED}),
    S.DENIED: frozenset(),
    S.CANCELLED: frozenset(),
}

# States from which an operation may start (checked again atomically by the repository).
SETTLEABLE = frozenset({S.APPROVED, S.SETTLED})
REFUNDABLE = frozenset({S.SETTLED, S.REFUNDED})
CANCELLABLE = frozenset({S.APPROVED, S.PENDING})
UNDECIDED = frozenset({S.RECEIVED, S.PENDING})


def sources_of(target: PaymentState) -> frozenset[PaymentState]:
    """Every state from which `target` may be reached: what a conditional update requires."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_transition(source: PaymentState, target: PaymentState) -> bool:
    return target in TRANSITIONS[source]


def transition(source: PaymentState, target: PaymentState) -> PaymentState:
    """The target state, or InvalidTransition: a bug, since callers check the state first."""
    if not can_transition(source, target):
        raise InvalidTransition(f"payment cannot go from {source} to {target}")
    return target


def wire_status(
    state: PaymentState, *, was_approved: bool
) -> Literal["approved", "denied", "undefined"]:
    """What VTEX is told: the authorization's outcome, which never changes once final.

    Settling, refunding or voiding an approved payment keeps it `approved` on the wire; a payment
    cancelled before the acquirer approved it reads `denied`.
    """
    if state in (S.APPROVED, S.SETTLED, S.REFUNDED):
        return "approved"
    if state is S.CANCELLED:
        return "approved" if was_approved else "denied"
    if state is S.DENIED:
        return "denied"
    return "undefined"
