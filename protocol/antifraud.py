"""Wire models of VTEX's Anti-fraud Provider Protocol (no I/O).

Requests are lenient, because VTEX's documents and its own test suite disagree (reference, A14):
every field but `id` may be missing or null, `value` is a decimal (the spec says integer, the test
suite sends 150.6), `transactionStartDate` comes without a zone, unknown fields are kept, and gift
card payments carry masked codes. Responses carry both `score` and `fraudRiskPercentage` (the
spec names the field one way on POST and the other on GET/PUT), always with the same value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from protocol import payments
from protocol.payments import Address, NameValue, NullableStr

# A VTEX transaction id: the spec bounds it at 255; no NUL (PostgreSQL text cannot hold one).
TransactionId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00/]+$")]
# Free text we keep: bounded so that nothing reaches a column or a log unbounded.
Text = Annotated[str | None, Field(default=None, max_length=1000)]
Amount = Annotated[Decimal, Field(allow_inf_nan=False)]

Status = Literal["approved", "denied", "undefined"]
AnalysisType = Literal["automatic", "manual"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Buyer(payments.Buyer):
    address: Address | None = None


class Shipping(_Lenient):
    value: Amount | None = None
    estimated_date: NullableStr = Field(default=None, alias="estimatedDate")
    address: Address | None = None


class Item(_Lenient):
    id: NullableStr = None
    name: NullableStr = None
    price: Amount | None = None
    quantity: int | None = None
    category_id: str | int | None = Field(default=None, alias="categoryId")
    category_name: NullableStr = Field(default=None, alias="categoryName")
    discount: Amount | None = None
    seller_id: NullableStr = Field(default=None, alias="sellerId")


class MiniCart(_Lenient):
    buyer: Buyer | None = None
    shipping: Shipping | None = None
    items: list[Item] | None = None
    tax_value: Amount | None = Field(default=None, alias="taxValue")


class PaymentDetails(_Lenient):
    bin: NullableStr = None
    last_digits: NullableStr = Field(default=None, alias="lastDigits")
    holder: NullableStr = None
    address: Address | None = None  # the billing address
    # Gift card payments (allowAntifraudOnGiftCard): VTEX masks the codes.
    gift_card_id: NullableStr = Field(default=None, alias="giftCardId")
    provider: NullableStr = None


class Payment(_Lenient):
    id: NullableStr = None
    method: NullableStr = None  # CreditCard, DebitCard, GiftCard, ...
    name: NullableStr = None
    value: Amount | None = None
    currency: NullableStr = Field(default=None, alias="currencyIso4217")
    installments: int | None = None
    details: PaymentDetails | None = None


class AnalysisRequest(_Lenient):
    """The body of `POST /transactions`, `PUT /transactions/{id}` and `POST /pre-analysis`."""

    id: TransactionId
    reference: Text = None
    value: Amount | None = None
    ip: Text = None
    store: Text = None
    device_fingerprint: Text = Field(default=None, alias="deviceFingerprint")
    mini_cart: MiniCart | None = Field(default=None, alias="miniCart")
    payments: list[Payment] | None = None
    hook: Annotated[str | None, Field(default=None, max_length=2000)] = None
    transaction_start_date: Text = Field(default=None, alias="transactionStartDate")
    merchant_settings: list[NameValue] | None = Field(default=None, alias="merchantSettings")


class AnalysisResponse(BaseModel):
    """The answer of `POST /transactions` (`received` while pending), of GET and PUT, and the
    body of the hook."""

    id: str
    tid: str
    status: Literal["received", "approved", "denied", "undefined"]
    score: float
    fraud_risk_percentage: float = Field(serialization_alias="fraudRiskPercentage")
    analysis_type: AnalysisType = Field(serialization_alias="analysisType")
    responses: dict[str, str]
    code: str | None = None
    message: str | None = None


class PreAnalysisResponse(BaseModel):
    id: str
    tid: str
    status: Literal["approved", "denied"]
    score: float
    analysis_type: Literal["automatic"] = Field(
        default="automatic", serialization_alias="analysisType"
    )
    responses: dict[str, str]
    code: str | None = None
    message: str | None = None


class StopResponse(BaseModel):
    """`DELETE /transactions/{id}`. VTEX's documented example is a copy of another endpoint's;
    this says what happened instead (reference, A9)."""

    id: str
    tid: str | None
    status: Status
    stopped: bool


class CustomField(BaseModel):
    name: str
    type: Literal["text", "password", "select"] = "text"
    options: list[dict[str, str]] | None = None


class Manifest(BaseModel):
    cardholder_document: Literal["required", "optional", "unused"] = Field(
        serialization_alias="cardholderDocument"
    )
    allow_antifraud_on_gift_card: bool = Field(serialization_alias="allowAntifraudOnGiftCard")
    custom_fields: list[CustomField] = Field(serialization_alias="customFields")
