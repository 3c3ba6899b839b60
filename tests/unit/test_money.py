from __future__ import annotations

from decimal import Decimal

import pytest

from protocol.money import InvalidAmount, from_minor, to_minor


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("31.9", "BRL", 3190),
        ("0.01", "usd", 1),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("0", "EUR", 0),
        ("4307.23", "BRL", 430723),
    ],
)
def test_round_trip(amount: str, currency: str, minor: int):
    assert to_minor(Decimal(amount), currency) == minor
    assert from_minor(minor, currency) == Decimal(amount)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("10.001", "BRL"), ("1.5", "JPY"), ("-1", "BRL"), ("NaN", "BRL"), ("Infinity", "USD")],
)
def test_refuses_what_minor_units_cannot_hold(amount: str, currency: str):
    with pytest.raises(InvalidAmount):
        to_minor(Decimal(amount), currency)


@pytest.mark.parametrize("amount", ["1e18", "1e999997", "1e10000000", "123456789012345678901"])
def test_refuses_amounts_too_large_before_computing_them(amount: str):
    # Without the digit check, 1e999997 spent seconds building its integer (and was accepted),
    # 1e10000000 raised decimal.Overflow: a 500.
    with pytest.raises(InvalidAmount, match="integer digits"):
        to_minor(Decimal(amount), "BRL")
