"""Fixtures for the Anti-fraud Provider Protocol: a client at the Service URL (`/antifraud`),
the provider headers VTEX sends, and VTEX's test-suite order as a payload builder."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from connector.app import ANTIFRAUD_PREFIX
from tests.conftest import MerchantCredentials

ADDRESS = {
    "country": "BRA",
    "street": "Praia de Botafogo St.",
    "number": "300",
    "complement": "3rd Floor",
    "neighborhood": "Botafogo",
    "postalCode": "22250040",
    "city": "Rio de Janeiro",
    "state": "RJ",
}

# VTEX's anti-fraud test suite body (antifraud-provider-tests, reference A13), `id` aside.
SUITE_ORDER: dict[str, Any] = {
    "reference": "v32478982vtx-01",
    "value": 150.6,
    "ip": "192.168.0.1",
    "deviceFingerprint": "12ade389087fexd",
    "miniCart": {
        "buyer": {
            "id": None,
            "firstName": "John",
            "lastName": "Doe",
            "document": "01234567890",
            "documentType": "CPF",
            "email": "john.doe@example.com",
            "phone": "+5521987654321",
            "address": {**ADDRESS, "street": "Brig. Faria Lima Avenue", "postalCode": "04538132"},
        },
        "shipping": {"value": 10.3, "estimatedDate": "2017-08-02T14:46:47", "address": ADDRESS},
        "items": [
            {
                "id": "132981",
                "name": "Some useful product",
                "price": 140.3,
                "quantity": 1,
                "deliveryType": "Normal",
                "deliverySlaInMinutes": 4320,
                "categoryId": "111",
                "categoryName": "Electronics",
                "discount": 0,
            }
        ],
        "taxValue": 0,
        "listRegistry": {"name": "My Wedding List", "deliveryToOwner": False},
    },
    "payments": [
        {
            "id": "D3AA1FC8372E430E8236649DB5EBD08E",
            "method": "CreditCard",
            "name": "Visa",
            "value": 150.6,
            "installments": 3,
            "details": {
                "bin": "486902",
                "lastDigits": "8214",
                "holder": "John Doe",
                "address": ADDRESS,
            },
        }
    ],
}


def suite_id(case: str) -> str:
    """A VTEX test-suite transaction id: a GUID without hyphens, upper case, plus the case digit."""
    return uuid.uuid4().hex.upper() + case


def order(
    transaction_id: str | None = None,
    *,
    hook: str | None = "https://hook.example.com/antifraud/notify?accountName=acme",
    **changes: Any,
) -> dict[str, Any]:
    """An order to analyse. `changes` use dotted paths: `{"miniCart.buyer.email": "x@y.z"}` via
    `**{"miniCart.buyer.email": ...}`; a value of `...` deletes the key."""
    body = copy.deepcopy(SUITE_ORDER)
    body["id"] = transaction_id or uuid.uuid4().hex.upper()
    if hook is not None:
        body["hook"] = hook
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        node: Any = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            node.pop(leaf, None)
        elif isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return body


def provider_headers(merchant: MerchantCredentials, **extra: str) -> dict[str, str]:
    return {
        "X-PROVIDER-API-AppKey": merchant.app_key,
        "X-PROVIDER-API-AppToken": merchant.app_token,
        "Content-Type": "application/json",
        "Accept": "application/json",
        **extra,
    }


SUITE = {"X-PROVIDER-API-IS-TESTSUITE": "true"}


@pytest.fixture
async def antifraud(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url=f"http://testserver{ANTIFRAUD_PREFIX}"
    ) as http:
        yield http


@pytest.fixture
def headers(merchant: MerchantCredentials) -> dict[str, str]:
    return provider_headers(merchant)
