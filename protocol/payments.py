"""Wire models of VTEX's Payment Provider Protocol (pydantic v2, no I/O).

Requests are parsed leniently, as VTEX's own documents disagree on spellings and types: unknown
fields are kept, most fields are optional, alternate spellings are accepted through aliases, and the
string "null" that one VTEX example sends is read as null. Responses always carry every key the
spec lists, `null` where it does not apply.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)


def _null_string_to_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == "null":
        return None
    return value


def _decimal_to_number(value: Decimal) -> int | float:
    """JSON numbers, never strings: VTEX rejects `"value": "20.00"`."""
    return int(value) if value == value.to_integral_value() else float(value)


NullableStr = Annotated[str | None, BeforeValidator(_null_string_to_none)]
WireAmount = Annotated[Decimal, PlainSerializer(_decimal_to_number, return_type=float)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class NameValue(_Lenient):
    name: str
    value: NullableStr = None


class CardExpiration(_Lenient):
    month: NullableStr = None
    year: NullableStr = None


class Card(_Lenient):
    """A card as VTEX sends it: plain (PCI connector), tokenized (Secure Proxy) or all null."""

    holder: NullableStr = None
    holder_token: NullableStr = Field(default=None, alias="holderToken")
    number: NullableStr = None
    number_token: NullableStr = Field(default=None, alias="numberToken")
    number_length: int | None = Field(
        default=None, validation_alias=AliasChoices("numberLength", "numberLenght")
    )
    bin: NullableStr = None
    csc: NullableStr = None
    csc_token: NullableStr = Field(default=None, alias="cscToken")
    expiration: CardExpiration | None = None
    document: NullableStr = None
    payment_origin: NullableStr = Field(default=None, alias="paymentOrigin")

    def __repr__(self) -> str:  # never print card data, even in a debugger or a traceback
        return "Card(<masked>)"

    __str__ = __repr__


class Address(_Lenient):
    country: NullableStr = None
    street: NullableStr = None
    number: NullableStr = None
    complement: NullableStr = None
    neighborhood: NullableStr = None
    postal_code: NullableStr = Field(default=None, alias="postalCode")
    city: NullableStr = None
    state: NullableStr = None


class Buyer(_Lenient):
    id: NullableStr = None
    first_name: NullableStr = Field(default=None, alias="firstName")
    last_name: NullableStr = Field(default=None, alias="lastName")
    document: NullableStr = None
    document_type: NullableStr = Field(default=None, alias="documentType")
    email: NullableStr = None
    phone: NullableStr = None
    is_corporate: bool | None = Field(default=None, alias="isCorporate")
    corporate_name: NullableStr = Field(default=None, alias="corporateName")
    trade_name: NullableStr = Field(default=None, alias="tradeName")
    corporate_document: NullableStr = Field(default=None, alias="corporateDocument")
    created_date: NullableStr = Field(default=None, alias="createdDate")


class Item(_Lenient):
    id: NullableStr = None
    name: NullableStr = None
    price: Decimal | None = None
    quantity: int | None = None
    discount: Decimal | None = None


class MiniCart(_Lenient):
    shipping_value: Decimal | None = Field(default=None, alias="shippingValue")
    tax_value: Decimal | None = Field(default=None, alias="taxValue")
    buyer: Buyer | None = None
    shipping_address: Address | None = Field(default=None, alias="shippingAddress")
    billing_address: Address | None = Field(default=None, alias="billingAddress")
    items: list[Item] | None = None


class Recipient(_Lenient):
    id: NullableStr = None
    name: NullableStr = None
    document_type: NullableStr = Field(default=None, alias="documentType")
    document: NullableStr = None
    role: NullableStr = None
    charge_processing_fee: bool | None = Field(default=None, alias="chargeProcessingFee")
    chargeback_liable: bool | None = Field(default=None, alias="chargebackLiable")
    amount: Decimal | None = None
    commission_amount: Decimal | None = Field(
        default=None, validation_alias=AliasChoices("commissionAmount", "comissionAmount")
    )


class CreatePaymentRequest(_Lenient):
    """`POST /payments`. Only `paymentId`, `value` and `currency` are truly required."""

    payment_id: str = Field(alias="paymentId", min_length=1, max_length=200)
    value: Decimal = Field(allow_inf_nan=False)
    currency: str = Field(min_length=3, max_length=3)
    reference: NullableStr = Field(default=None, max_length=200)
    order_id: NullableStr = Field(default=None, alias="orderId", max_length=200)
    transaction_id: NullableStr = Field(default=None, alias="transactionId", max_length=200)
    shopper_interaction: NullableStr = Field(default=None, alias="shopperInteraction")
    verification_only: bool | None = Field(default=None, alias="verificationOnly")
    payment_method: NullableStr = Field(default=None, alias="paymentMethod", max_length=100)
    payment_method_custom_code: NullableStr = Field(default=None, alias="paymentMethodCustomCode")
    merchant_name: NullableStr = Field(default=None, alias="merchantName")
    reference_value: Decimal | None = Field(default=None, alias="referenceValue")
    installments: int | None = Field(default=None, ge=0, le=999)
    installments_interest_rate: Decimal | None = Field(
        default=None, alias="installmentsInterestRate"
    )
    installments_value: Decimal | None = Field(default=None, alias="installmentsValue")
    device_fingerprint: NullableStr = Field(default=None, alias="deviceFingerprint")
    ip_address: NullableStr = Field(default=None, alias="ipAddress")
    card: Card | None = None
    mini_cart: MiniCart | None = Field(default=None, alias="miniCart")
    recipients: list[Recipient] | None = None
    merchant_settings: list[NameValue] | None = Field(default=None, alias="merchantSettings")
    url: NullableStr = None
    callback_url: NullableStr = Field(default=None, alias="callbackUrl")
    return_url: NullableStr = Field(default=None, alias="returnUrl")
    inbound_requests_url: NullableStr = Field(
        default=None, validation_alias=AliasChoices("inboundRequestsUrl", "inboundRequestUrl")
    )
    secure_proxy_url: NullableStr = Field(default=None, alias="secureProxyUrl")
    secure_proxy_tokens_url: NullableStr = Field(
        default=None, validation_alias=AliasChoices("secureProxyTokensUrl", "secureProxyTokensURL")
    )
    sandbox_mode: bool | None = Field(
        default=None, validation_alias=AliasChoices("sandboxMode", "sandBoxMode")
    )
    total_cart_value: Decimal | None = Field(default=None, alias="totalCartValue")
    connector_metadata: list[NameValue] | None = Field(default=None, alias="connectorMetadata")

    def __repr__(self) -> str:
        return f"CreatePaymentRequest(paymentId={self.payment_id!r}, value={self.value})"


class _OperationRequest(_Lenient):
    payment_id: NullableStr = Field(default=None, alias="paymentId")
    request_id: str = Field(alias="requestId", min_length=1, max_length=200)
    transaction_id: NullableStr = Field(default=None, alias="transactionId")
    authorization_id: NullableStr = Field(default=None, alias="authorizationId")
    tid: NullableStr = None
    nsu: NullableStr = None
    sandbox_mode: bool | None = Field(
        default=None, validation_alias=AliasChoices("sandboxMode", "sandBoxMode")
    )
    merchant_settings: list[NameValue] | None = Field(default=None, alias="merchantSettings")
    connector_metadata: list[NameValue] | None = Field(default=None, alias="connectorMetadata")


class SettlementRequest(_OperationRequest):
    value: Decimal = Field(allow_inf_nan=False)
    recipients: list[Recipient] | None = None


class RefundRequest(_OperationRequest):
    value: Decimal = Field(allow_inf_nan=False)
    settle_id: NullableStr = Field(default=None, alias="settleId")
    recipients: list[Recipient] | None = None


class CancellationRequest(_OperationRequest):
    # "Value in cents" per the spec, decimals elsewhere: logged by nobody, relied on by nobody.
    value: Decimal | None = None


class InboundRequestData(_Lenient):
    body: str | None = None


class InboundRequest(_Lenient):
    """`POST /payments/{paymentId}/inbound/{action}`: an external call VTEX forwards to us."""

    request_id: str = Field(alias="requestId", min_length=1, max_length=200)
    payment_id: NullableStr = Field(default=None, alias="paymentId")
    transaction_id: NullableStr = Field(default=None, alias="transactionId")
    authorization_id: NullableStr = Field(default=None, alias="authorizationId")
    nsu: NullableStr = None
    tid: NullableStr = None
    request_data: InboundRequestData | None = Field(default=None, alias="requestData")
    merchant_settings: list[NameValue] | None = Field(default=None, alias="merchantSettings")


class InboundResponseData(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    status_code: int = Field(alias="statusCode")
    content_type: str = Field(alias="contentType")
    content: str


class InboundResponse(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    request_id: str = Field(alias="requestId")
    payment_id: str = Field(alias="paymentId")
    code: str | None = None
    message: str | None = None
    response_data: InboundResponseData = Field(alias="responseData")


class ManifestPaymentMethod(BaseModel):
    name: str
    allows_split: Literal["onAuthorize", "onCapture", "disabled"] = Field(
        serialization_alias="allowsSplit"
    )


class CustomFieldOption(BaseModel):
    text: str
    value: str


class CustomField(BaseModel):
    name: str
    type: Literal["text", "password", "select"]
    options: list[CustomFieldOption] | None = None


class AutoSettleDelay(BaseModel):
    minimum: str
    maximum: str


class Manifest(BaseModel):
    payment_methods: list[ManifestPaymentMethod] = Field(serialization_alias="paymentMethods")
    custom_fields: list[CustomField] = Field(serialization_alias="customFields")
    auto_settle_delay: AutoSettleDelay = Field(serialization_alias="autoSettleDelay")


PaymentStatus = Literal["approved", "denied", "undefined"]


class PaymentAppData(BaseModel):
    """What VTEX's checkout opens for a payment app or Pix; `payload` is a JSON string."""

    model_config = ConfigDict(serialize_by_alias=True)

    app_name: str = Field(alias="appName")
    payload: str


class CreatePaymentResponse(BaseModel):
    """Every key the spec lists; `null` where it does not apply."""

    model_config = ConfigDict(serialize_by_alias=True)

    payment_id: str = Field(alias="paymentId")
    status: PaymentStatus
    authorization_id: str | None = Field(alias="authorizationId")
    tid: str
    nsu: str | None
    acquirer: str | None
    code: str | None
    message: str | None
    delay_to_auto_settle: int = Field(alias="delayToAutoSettle")
    delay_to_auto_settle_after_antifraud: int = Field(alias="delayToAutoSettleAfterAntifraud")
    delay_to_cancel: int = Field(alias="delayToCancel")
    payment_url: str | None = Field(default=None, alias="paymentUrl")
    # Deprecated by VTEX in favour of paymentUrl, but what its Test Suite's Redirect case reads.
    redirect_url: str | None = Field(default=None, alias="redirectUrl")
    identification_number: str | None = Field(default=None, alias="identificationNumber")
    identification_number_formatted: str | None = Field(
        default=None, alias="identificationNumberFormatted"
    )
    bar_code_image_type: str | None = Field(default=None, alias="barCodeImageType")
    bar_code_image_number: str | None = Field(default=None, alias="barCodeImageNumber")
    payment_app_data: PaymentAppData | None = Field(default=None, alias="paymentAppData")
    max_value: WireAmount | None = Field(default=None, alias="maxValue")
    card_brand: str | None = Field(default=None, alias="cardBrand")
    first_digits: str | None = Field(default=None, alias="firstDigits")
    last_digits: str | None = Field(default=None, alias="lastDigits")


class SettlementResponse(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    payment_id: str = Field(alias="paymentId")
    settle_id: str | None = Field(alias="settleId")
    value: WireAmount
    code: str | None
    message: str | None
    request_id: str = Field(alias="requestId")


class RefundResponse(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    payment_id: str = Field(alias="paymentId")
    refund_id: str | None = Field(alias="refundId")
    value: WireAmount
    code: str | None
    message: str | None
    request_id: str = Field(alias="requestId")


class CancellationResponse(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True)

    payment_id: str = Field(alias="paymentId")
    cancellation_id: str | None = Field(alias="cancellationId")
    code: str | None
    message: str | None
    request_id: str = Field(alias="requestId")


class ErrorBody(BaseModel):
    """VTEX's `Fail-BadRequest` shape, used for every error this service raises."""

    status: Literal["error"] = "error"
    code: str
    message: str
