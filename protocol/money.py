"""Money: a decimal in currency units on the wire, integer minor units inside the service."""

from __future__ import annotations

from decimal import Decimal

# ISO 4217 minor-unit exponents that differ from 2. Every other well-formed code uses 2.
_EXPONENTS: dict[str, int] = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3, "CLF": 4,
}  # fmt: skip


class InvalidAmount(ValueError):
    """An amount that cannot be expressed in the currency's minor units."""


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


# No amount has this many digits before the point; checked before any arithmetic, because
# `1e999999` is a valid JSON number whose integer value takes seconds to build.
MAX_INTEGER_DIGITS = 18


def to_minor(amount: Decimal, currency: str) -> int:
    """31.9 BRL -> 3190. Refuses negative amounts, more decimals than the currency has, and
    amounts of more than 18 integer digits."""
    if not amount.is_finite() or amount < 0:
        raise InvalidAmount(f"amount must be a finite number >= 0, got {amount}")
    if amount and amount.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidAmount(f"amount must have at most {MAX_INTEGER_DIGITS} integer digits")
    scaled = amount.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise InvalidAmount(
            f"{amount} has more decimal places than {currency.upper()} allows "
            f"({exponent(currency)})"
        )
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    """3190 BRL -> Decimal('31.90')."""
    return Decimal(minor).scaleb(-exponent(currency))
