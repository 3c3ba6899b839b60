"""The facts of one order that rules look at, read once from VTEX's lenient payload."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from connector.antifraud.geo import bin_country, country_alpha2, ip_country
from protocol.antifraud import AnalysisRequest, Payment
from protocol.money import InvalidAmount, exponent, from_minor, to_minor
from protocol.payments import Address

SUBJECTS = ("card", "email", "document", "ip", "device")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
# Far beyond any order, well inside the 64-bit column (and its sums over a window).
MAX_MINOR = 10**15


def _minor_units(amount: Decimal, currency: str) -> int:
    """Rounded to the currency's precision: a risk rule needs no sub-cent exactness, and VTEX
    sends values computed in floating point."""
    to_minor(abs(amount).to_integral_value(rounding=ROUND_DOWN), currency)  # bounds check only
    if amount < 0:
        raise InvalidAmount(f"amount must be >= 0, got {amount}")
    step = Decimal(1).scaleb(-exponent(currency))
    minor = to_minor(amount.quantize(step, rounding=ROUND_HALF_UP), currency)
    if minor > MAX_MINOR:
        raise InvalidAmount(f"amount must be at most {MAX_MINOR} minor units")
    return minor


def _clean(value: str | None) -> str | None:
    text = (value or "").strip().lower()
    return text or None


def _alphanumeric(value: str | None) -> str | None:
    text = re.sub(r"[^0-9a-z]", "", (value or "").lower())
    return text or None


def _card_payment(payments: list[Payment]) -> Payment | None:
    """The payment that identifies a card: the first with a BIN (credit or debit)."""
    for payment in payments:
        if payment.details is not None and payment.details.bin:
            return payment
    return None


def _address_key(address: Address | None) -> tuple[str, str] | None:
    if address is None:
        return None
    country, postal = country_alpha2(address.country), _alphanumeric(address.postal_code)
    if country is None and postal is None:
        return None
    return (country or "", postal or "")


@dataclass(frozen=True, slots=True)
class Facts:
    amount: Decimal  # currency units
    amount_minor: int
    currency: str
    card: str | None  # BIN and last four digits, digits only
    bin: str | None
    email: str | None
    email_domain: str | None
    document: str | None
    ip: str | None
    device: str | None
    ip_country: str | None  # ISO 3166-1 alpha-2
    bin_country: str | None
    shipping_country: str | None
    billing_country: str | None
    buyer_country: str | None
    shipping_key: tuple[str, str] | None  # (country, postal code)
    billing_key: tuple[str, str] | None

    @classmethod
    def of(cls, request: AnalysisRequest, default_currency: str) -> Facts:
        """Raises InvalidAmount for a negative, non-finite or absurdly large value."""
        payments = request.payments or []
        currency = next(
            (p.currency.upper() for p in payments if p.currency and _CURRENCY.match(p.currency)),
            default_currency,
        )
        amount = request.value
        if amount is None:
            amount = sum((p.value for p in payments if p.value is not None), Decimal(0))
        amount_minor = _minor_units(amount, currency)
        card_payment = _card_payment(payments)
        details = card_payment.details if card_payment is not None else None
        bin_ = _alphanumeric(details.bin) if details is not None else None
        last4 = _alphanumeric(details.last_digits) if details is not None else None
        cart = request.mini_cart
        buyer = cart.buyer if cart is not None else None
        shipping = cart.shipping.address if cart is not None and cart.shipping else None
        billing = details.address if details is not None else None
        email = _clean(buyer.email if buyer is not None else None)
        return cls(
            amount=from_minor(amount_minor, currency),
            amount_minor=amount_minor,
            currency=currency,
            card=f"{bin_}{last4}" if bin_ and last4 else None,
            bin=bin_,
            email=email,
            email_domain=email.rpartition("@")[2] or None if email and "@" in email else None,
            document=_alphanumeric(buyer.document if buyer is not None else None),
            ip=_clean(request.ip),
            device=_clean(request.device_fingerprint),
            ip_country=ip_country(request.ip),
            bin_country=bin_country(bin_),
            shipping_country=country_alpha2(shipping.country) if shipping else None,
            billing_country=country_alpha2(billing.country) if billing else None,
            buyer_country=(
                country_alpha2(buyer.address.country) if buyer and buyer.address else None
            ),
            shipping_key=_address_key(shipping),
            billing_key=_address_key(billing),
        )

    def subject(self, name: str) -> str | None:
        """The value velocity and first-purchase rules count by."""
        return {
            "card": self.card,
            "email": self.email,
            "document": self.document,
            "ip": self.ip,
            "device": self.device,
        }.get(name)

    def list_value(self, name: str) -> str | None:
        """The value blocklists and allowlists compare (normalised as list entries are)."""
        if name == "email_domain":
            return self.email_domain
        if name == "bin":
            return self.bin
        return self.subject(name)

    def units(self, minor: int) -> Decimal:
        return from_minor(minor, self.currency)
