"""The state machine's transitions, listed explicitly so a changed arrow breaks a test."""

from __future__ import annotations

import itertools

import pytest

from connector.errors import InvalidTransition
from connector.payments.states import PaymentState, can_transition, transition, wire_status

S = PaymentState
ALLOWED = {
    (S.RECEIVED, S.APPROVED),
    (S.RECEIVED, S.DENIED),
    (S.RECEIVED, S.PENDING),
    (S.PENDING, S.APPROVED),
    (S.PENDING, S.DENIED),
    (S.PENDING, S.CANCELLED),
    (S.APPROVED, S.SETTLED),
    (S.APPROVED, S.CANCELLED),
    (S.SETTLED, S.SETTLED),
    (S.SETTLED, S.REFUNDED),
    (S.REFUNDED, S.REFUNDED),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_transition_is_either_allowed_or_refused(source: S, target: S):
    if (source, target) in ALLOWED:
        assert transition(source, target) is target
    else:
        assert not can_transition(source, target)
        with pytest.raises(InvalidTransition):
            transition(source, target)


def test_final_states_have_no_way_out():
    for final in (S.DENIED, S.CANCELLED):
        assert not any(can_transition(final, target) for target in S)


@pytest.mark.parametrize(
    ("state", "was_approved", "wire"),
    [
        (S.RECEIVED, False, "undefined"),
        (S.PENDING, False, "undefined"),
        (S.APPROVED, True, "approved"),
        (S.SETTLED, True, "approved"),
        (S.REFUNDED, True, "approved"),
        (S.DENIED, False, "denied"),
        (S.CANCELLED, True, "approved"),
        (S.CANCELLED, False, "denied"),
    ],
)
def test_wire_status(state: S, was_approved: bool, wire: str):
    assert wire_status(state, was_approved=was_approved) == wire


def test_sources_of():
    from connector.payments.states import sources_of

    assert sources_of(S.SETTLED) == {S.APPROVED, S.SETTLED}
    assert sources_of(S.REFUNDED) == {S.SETTLED, S.REFUNDED}
    assert sources_of(S.CANCELLED) == {S.APPROVED, S.PENDING}
    assert sources_of(S.PENDING) == {S.RECEIVED}
