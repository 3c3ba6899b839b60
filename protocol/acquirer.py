"""Wire models of the acquirer API: what the `http` acquirer adapter speaks to a provider's core.

A provider plugs its core in by serving six routes under one base URL (a thin shim in front of
whatever it already runs); `protocol/acquirer-api.yaml` is the OpenAPI description and the README
shows an example. The rules that make retries safe:

- Amounts are integers in minor units (cents), currencies ISO 4217 codes.
- Every POST carries a `reference` chosen by the connector, which is its idempotency key: a POST
  with a reference the core has seen returns the first answer, unchanged, and acts no second time.
- `GET /authorizations/{reference}` and `GET /operations/{reference}` tell whether the core ever
  saw a reference; their 404 must carry this API's error body (`code` ending in `-not-found`), so
  that a mis-routed URL is never mistaken for "never seen".
- Refusals are answers (`denied`, `refused`, or a 4xx with an `ApiError`), not failures; a 5xx or
  no answer means "unknown", after which the connector asks with a GET before it sends anything
  again.

No I/O lives here.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# Header carrying the provider's API key (`X-PROVIDER-Forward-Api-Key` through VTEX's proxy).
API_KEY_HEADER = "Api-Key"
REFERENCE_PATTERN = r"^[A-Za-z0-9._:\-]{1,200}$"


class _Model(BaseModel):
    # Unknown fields are ignored: a core may answer with more than this API asks for.
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True, extra="ignore")


class Flow(StrEnum):
    """How the shopper pays; decides which instrument a pending authorization carries."""

    CARD = "card"
    REDIRECT = "redirect"
    BANK_INVOICE = "bank_invoice"
    PIX = "pix"
    PAYMENT_APP = "payment_app"


class AuthorizationStatus(StrEnum):
    APPROVED = "approved"
    DENIED = "denied"
    PENDING = "pending"  # decided later: the core answers a GET, or calls the outcome webhook


class OperationStatus(StrEnum):
    SUCCEEDED = "succeeded"
    REFUSED = "refused"


class Card(_Model):
    """Card data, or the Secure Proxy's tokens standing for it (the proxy swaps them in flight)."""

    number: str = Field(max_length=200)
    holder: str | None = Field(default=None, max_length=200)
    csc: str | None = Field(default=None, max_length=200)
    expiry_month: str | None = Field(default=None, alias="expiryMonth", max_length=2)
    expiry_year: str | None = Field(default=None, alias="expiryYear", max_length=4)

    def __repr__(self) -> str:  # never print card data or tokens, even in a traceback
        return "Card(<masked>)"

    __str__ = __repr__


class AuthorizationCreate(_Model):
    """POST /authorizations"""

    reference: str = Field(pattern=REFERENCE_PATTERN)
    amount: int = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    flow: Flow = Flow.CARD
    payment_method: str | None = Field(default=None, alias="paymentMethod", max_length=100)
    installments: int | None = Field(default=None, ge=0, le=999)
    card: Card | None = None
    merchant_name: str | None = Field(default=None, alias="merchantName", max_length=200)
    # Where a redirect flow sends the shopper back to the store.
    return_url: str | None = Field(default=None, alias="returnUrl", max_length=2000)


class PaymentAppData(_Model):
    app_name: str = Field(alias="appName")
    payload: str


class Instrument(_Model):
    """What a pending authorization shows the shopper, by VTEX's field names."""

    payment_url: str | None = Field(default=None, alias="paymentUrl")
    redirect_url: str | None = Field(default=None, alias="redirectUrl")
    identification_number: str | None = Field(default=None, alias="identificationNumber")
    identification_number_formatted: str | None = Field(
        default=None, alias="identificationNumberFormatted"
    )
    bar_code_image_type: str | None = Field(default=None, alias="barCodeImageType")
    bar_code_image_number: str | None = Field(default=None, alias="barCodeImageNumber")
    payment_app_data: PaymentAppData | None = Field(default=None, alias="paymentAppData")


class Authorization(_Model):
    """The core's answer to POST /authorizations and GET /authorizations/{reference}."""

    reference: str
    status: AuthorizationStatus
    # The core's authorization id; required when approved, and stable on every repeat.
    id: str | None = None
    nsu: str | None = None
    code: str | None = None
    message: str | None = None
    instrument: Instrument | None = None


class OperationCreate(_Model):
    """POST /authorizations/{reference}/captures | refunds | voids"""

    reference: str = Field(pattern=REFERENCE_PATTERN)
    amount: int = Field(ge=0)


class Operation(_Model):
    """The core's answer to an operation and to GET /operations/{reference}."""

    reference: str
    status: OperationStatus
    amount: int = Field(ge=0)
    # The core's id for the capture, refund or void; required when succeeded.
    id: str | None = None
    code: str | None = None
    message: str | None = None


class InboundCall(_Model):
    """POST /authorizations/{reference}/inbound/{action}: a request VTEX relayed verbatim."""

    body: str = ""


class InboundReply(_Model):
    """Relayed by VTEX to the original caller; `authorization`, when present, is an outcome the
    call decided (a wallet confirming a payment), which the connector records."""

    status_code: int = Field(alias="statusCode", ge=100, le=599)
    content_type: str = Field(default="application/json", alias="contentType")
    content: str = ""
    authorization: Authorization | None = None


class ApiError(_Model):
    """Every 4xx body; the connector shows `code` and `message` to VTEX on a refusal."""

    code: str
    message: str


__all__ = [
    "API_KEY_HEADER",
    "ApiError",
    "Authorization",
    "AuthorizationCreate",
    "AuthorizationStatus",
    "Card",
    "Flow",
    "InboundCall",
    "InboundReply",
    "Instrument",
    "Operation",
    "OperationCreate",
    "OperationStatus",
    "PaymentAppData",
]
