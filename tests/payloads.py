"""Request bodies as VTEX sends them (shapes from VTEX's spec examples)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

APPROVED_CARD = "4444333322221111"
DENIED_CARD = "4444333322221112"
ASYNC_APPROVED_CARD = "4222222222222224"
ASYNC_DENIED_CARD = "4222222222222225"
TEST_SUITE = {"X-VTEX-API-Is-TestSuite": "true"}

_CREATE_PAYMENT: dict[str, Any] = {
    "reference": "618272",
    "orderId": "1072430428324",
    "shopperInteraction": "ecommerce",
    "transactionId": "2F023FD5A72A49D48A8633252B7CCBD6",
    "paymentId": "01693EB95BE443AC85874E395CD91565",
    "paymentMethod": "Visa",
    "paymentMethodCustomCode": None,
    "merchantName": "mystore",
    "card": {
        "holder": "John Doe",
        "number": APPROVED_CARD,
        "csc": "987",
        "expiration": {"month": "12", "year": "2030"},
        "document": "39295416023",
        "token": None,
    },
    "value": 31.9,
    "referenceValue": 31.9,
    "currency": "BRL",
    "installments": 1,
    "installmentsInterestRate": 0.0,
    "installmentsValue": 31.9,
    "deviceFingerprint": "75076388",
    "ipAddress": "187.105.111.65",
    "miniCart": {
        "buyer": {
            "id": "c1245228-1c68-11e6-94ac-0afa86a846a5",
            "firstName": "John",
            "lastName": "Doe",
            "document": "01234567890",
            "documentType": "cpf",
            "corporateName": None,
            "tradeName": None,
            "corporateDocument": None,
            "isCorporate": False,
            "email": "john.doe@example.com",
            "phone": "+5521999999999",
            "createdDate": "2020-02-18T18:17:45",
        },
        "shippingAddress": {
            "country": "BRA",
            "street": "Praia de Botafogo St.",
            "number": "300",
            "complement": "3rd Floor",
            "neighborhood": "Botafogo",
            "postalCode": "22250040",
            "city": "Rio de Janeiro",
            "state": "RJ",
        },
        "billingAddress": {
            "country": "BRA",
            "street": "Brigadeiro Faria Lima Avenue",
            "number": "4440",
            "complement": "10th Floor",
            "neighborhood": "Itaim Bibi",
            "postalCode": "04538132",
            "city": "São Paulo",
            "state": "SP",
        },
        "items": [
            {
                "id": "8",
                "name": "Tenis Preto I",
                "price": 30.9,
                "quantity": 1,
                "discount": 0.0,
                "deliveryType": "Normal",
                "categoryId": "5",
                "sellerId": "1",
            }
        ],
        "shippingValue": 1.0,
        "taxValue": 0.0,
    },
    "url": "https://admin.mystore.example.com/orders?q=1072430428324",
    "callbackUrl": "https://api.mystore.example.com/notify?an=mystore&X-VTEX-signature=abc",
    "returnUrl": "https://mystore.example.com/checkout/order/1072430428324",
    "inboundRequestsUrl": "https://api.mystore.example.com/checkout/order/1/inbound-request/:action",
    "merchantSettings": [{"name": "field1", "value": "value1"}],
    "connectorMetadata": [{"name": "MetadataName", "value": "MetadataValue"}],
}


def create_payment(
    *, card_number: str | None = APPROVED_CARD, value: float | str = 31.9, **overrides: Any
) -> dict[str, Any]:
    """A full create-payment body with a fresh paymentId unless one is given."""
    body = copy.deepcopy(_CREATE_PAYMENT)
    body["paymentId"] = uuid.uuid4().hex.upper()
    body["card"]["number"] = card_number
    body["value"] = value
    body.update(overrides)
    return body


def settlement(payment_id: str, value: float, request_id: str | None = None) -> dict[str, Any]:
    return {
        "paymentId": payment_id,
        "requestId": request_id or uuid.uuid4().hex,
        "transactionId": "2F023FD5A72A49D48A8633252B7CCBD6",
        "value": value,
    }


def refund(payment_id: str, value: float, request_id: str | None = None) -> dict[str, Any]:
    return {
        "paymentId": payment_id,
        "requestId": request_id or uuid.uuid4().hex,
        "transactionId": "2F023FD5A72A49D48A8633252B7CCBD6",
        "settleId": "x",
        "value": value,
    }


def cancellation(payment_id: str, request_id: str | None = None) -> dict[str, Any]:
    return {"paymentId": payment_id, "requestId": request_id or uuid.uuid4().hex}


def tokenized_payment(
    tokens: dict[str, Any], secure_proxy_url: str | None, **overrides: Any
) -> dict[str, Any]:
    """A create-payment body as VTEX sends it to a connector that is not PCI-certified: card
    tokens from VTEX's vault instead of card data, and the payment's Secure Proxy URL."""
    body = create_payment(**overrides)
    body["card"] = {
        "holder": None,
        "holderToken": tokens["holderToken"],
        "number": None,
        "numberToken": tokens["numberToken"],
        "numberLength": tokens["numberLength"],
        "bin": tokens["bin"],
        "csc": None,
        "cscToken": tokens["cscToken"],
        "cscLength": tokens["cscLength"],
        "expiration": {"month": "12", "year": "2030"},
        "document": "39295416023",
        "token": None,
    }
    if secure_proxy_url is not None:
        body["secureProxyUrl"] = secure_proxy_url
    return body
