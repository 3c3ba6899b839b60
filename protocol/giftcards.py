"""Wire models of VTEX's Gift Card Provider Protocol, as the Gift Card Hub calls it (no I/O).

Requests are lenient, because VTEX's documents disagree with each other (see the reference, B10):
unknown fields are kept, the cart's totals may be integers or decimals, `orderInfo.sequence` may be
a number or a string, `redemptionCode` may be null or masked, and `operation` is read in any case.
Money is a `Decimal` in currency units on the wire, serialised as a JSON number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from protocol.payments import NullableStr, WireAmount

# What a request id, a card id or a code may be: bounded, printable, no NUL.
RequestId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]+$")]


def format_date(moment: datetime) -> str:
    """UTC, milliseconds, `Z`: `2026-11-28T09:18:37.123Z` (VTEX shows `.fff` precision)."""
    m = moment.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 on every platform.
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond // 1000:03d}Z"
    )


def parse_date(value: Any) -> Any:
    """ISO 8601 with or without a zone (VTEX omits it; a missing zone means UTC), as UTC."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError as error:  # 0001-01-01T00:00+05:00 is before year 1 in UTC
            raise ValueError("date is out of range once converted to UTC") from error
    return value


def _operation(value: Any) -> Any:
    return value.strip().capitalize() if isinstance(value, str) else value


WireDate = Annotated[datetime, BeforeValidator(parse_date), PlainSerializer(format_date)]
Operation = Annotated[Literal["Debit", "Credit"], BeforeValidator(_operation)]
# Totals VTEX types as integers in one schema and decimals in another.
LenientNumber = Annotated[Decimal | None, BeforeValidator(lambda v: None if v == "" else v)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Link(BaseModel):
    href: str


# ----------------------------------------------------------------------------- _search


class SearchClient(_Lenient):
    id: NullableStr = None
    email: NullableStr = None
    document: NullableStr = None
    corporate_document: NullableStr = Field(default=None, alias="corporateDocument")


class SearchCart(_Lenient):
    redemption_code: NullableStr = Field(default=None, alias="redemptionCode")
    relation_name: NullableStr = Field(default=None, alias="relationName")
    grand_total: LenientNumber = Field(default=None, alias="grandTotal")


class SearchRequest(_Lenient):
    """`POST /giftcards/_search`. VTEX marks both parts required; either may be missing here."""

    client: SearchClient | None = None
    cart: SearchCart | None = None


class CardSummary(BaseModel):
    """One entry of the `_search` answer (the spec's `response` schema plus optional fields)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    provider: str
    balance: WireAmount
    total_balance: WireAmount = Field(alias="totalBalance")
    caption: str | None = None
    relation_name: str | None = Field(default=None, alias="relationName")
    currency_code: str = Field(alias="currencyCode")
    emission_date: WireDate = Field(alias="emissionDate")
    expiring_date: WireDate | None = Field(default=None, alias="expiringDate")
    self_link: Link = Field(alias="_self")


# ----------------------------------------------------------------------------- cards


class CardDetail(BaseModel):
    """`GET /giftcards/{giftCardId}`. `balance` is what the card can pay now: 0 when it is
    blocked or expired, so that checkout never offers it."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    redemption_token: str = Field(alias="redemptionToken")
    redemption_code: str = Field(alias="redemptionCode")
    balance: WireAmount
    emission_date: WireDate = Field(alias="emissionDate")
    expiring_date: WireDate | None = Field(default=None, alias="expiringDate")
    currency_code: str = Field(alias="currencyCode")
    discount: bool = False
    caption: str | None = None
    relation_name: str | None = Field(default=None, alias="relationName")
    provider: str
    transactions: Link
    # The older schema's name for the same link (`response1.transaction`).
    transaction: Link


class CreateCardRequest(_Lenient):
    """`POST /giftcards`. VTEX requires relationName, caption and profileId; a card without an
    owner (a voucher found by its code) is allowed here, an owner-restricted one without an owner
    is not."""

    relation_name: NullableStr = Field(default=None, alias="relationName", max_length=200)
    caption: NullableStr = Field(default=None, max_length=200)
    profile_id: NullableStr = Field(default=None, alias="profileId", max_length=200)
    emission_date: WireDate | None = Field(default=None, alias="emissionDate")
    expiring_date: WireDate | None = Field(default=None, alias="expiringDate")
    restricted_to_owner: bool = Field(default=False, alias="restrictedToOwner")
    multiple_redemptions: bool = Field(default=True, alias="multipleRedemptions")
    multiple_credits: bool = Field(default=True, alias="multipleCredits")
    currency_code: NullableStr = Field(default=None, alias="currencyCode", pattern=r"^[A-Za-z]{3}$")


class CreatedCard(BaseModel):
    """The answer to `POST /giftcards`: the card as created, with its redemption code in full.
    This is the only time the code is ever shown; the service keeps only its hash."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: str
    relation_name: str = Field(alias="relationName")
    caption: str | None = None
    profile_id: str | None = Field(default=None, alias="profileId")
    emission_date: WireDate = Field(alias="emissionDate")
    expiring_date: WireDate | None = Field(default=None, alias="expiringDate")
    restricted_to_owner: bool = Field(alias="restrictedToOwner")
    multiple_redemptions: bool = Field(alias="multipleRedemptions")
    multiple_credits: bool = Field(alias="multipleCredits")
    currency_code: str = Field(alias="currencyCode")
    redemption_token: str = Field(alias="redemptionToken")
    redemption_code: str = Field(alias="redemptionCode")
    balance: WireAmount
    provider: str
    transactions: Link


# ----------------------------------------------------------------------------- transactions


class OrderInfo(_Lenient):
    order_id: NullableStr = Field(default=None, alias="orderId", max_length=200)
    sequence: int | str | None = None
    client_profile: dict[str, Any] | None = Field(default=None, alias="clientProfile")


class CreateTransactionRequest(_Lenient):
    """`POST /giftcards/{giftCardId}/transactions`: a Debit (a hold) or a Credit (a recharge)."""

    operation: Operation
    value: Decimal = Field(gt=0)
    description: NullableStr = Field(default=None, max_length=500)
    redemption_token: NullableStr = Field(default=None, alias="redemptionToken", max_length=200)
    redemption_code: NullableStr = Field(default=None, alias="redemptionCode", max_length=200)
    request_id: RequestId = Field(alias="requestId")
    order_info: OrderInfo | None = Field(default=None, alias="orderInfo")


class TransactionSummary(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    card_id: str = Field(alias="cardId")
    id: str
    self_link: Link = Field(alias="_self")


class TransactionDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    value: WireAmount
    description: str | None = None
    date: WireDate
    request_id: str = Field(alias="requestId")
    operation: Literal["Debit", "Credit"]
    order_id: str | None = Field(default=None, alias="orderId")
    settlement: Link
    cancellation: Link
    authorization: Link


class OperationRequest(_Lenient):
    """`POST …/settlements` and `POST …/cancellations`."""

    value: Decimal = Field(gt=0)
    request_id: RequestId = Field(alias="requestId")


class OperationRecord(BaseModel):
    """An authorization, settlement or cancellation: `{oid, value, date}`."""

    oid: str
    value: WireAmount
    date: WireDate


class GiftCardError(BaseModel):
    """The body of every 4xx this protocol answers except 401 and 403 (empty, as the Hub
    requires)."""

    code: str
    message: str


__all__ = [
    "CardDetail",
    "CardSummary",
    "CreateCardRequest",
    "CreateTransactionRequest",
    "CreatedCard",
    "GiftCardError",
    "Link",
    "OperationRecord",
    "OperationRequest",
    "OrderInfo",
    "SearchCart",
    "SearchClient",
    "SearchRequest",
    "TransactionDetail",
    "TransactionSummary",
    "format_date",
    "parse_date",
]
