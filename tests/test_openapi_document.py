"""Static checks of ``openapi.yaml``.

The document must be a valid OpenAPI 3.0 description of the service's three protocols and its
admin API, agree with VTEX's official specifications on every path the service serves (property
names, JSON types, enums): the Payment Provider Protocol's (``payment-provider-protocol.json``)
under the global server ``/payment-provider``, the Gift Card Provider Protocol's
(``giftcard-provider-protocol.json``) under the path-level server ``/giftcard``, the Anti-fraud
Provider Protocol's (``antifraud-provider-protocol.json``) under full ``/antifraud/...`` paths
and the path-level server ``/``; and it must document the statuses the service returns.
Nothing here imports the project: the documents are only read from disk.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import openapi_walk as walk

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_PATH = ROOT / "openapi.yaml"
VTEX_SPECS_DIR = ROOT.parent / "shared" / "vtex-specs"
VTEX_SPEC_PATH = VTEX_SPECS_DIR / "payment-provider-protocol.json"
VTEX_GIFTCARD_SPEC_PATH = VTEX_SPECS_DIR / "giftcard-provider-protocol.json"
VTEX_ANTIFRAUD_SPEC_PATH = VTEX_SPECS_DIR / "antifraud-provider-protocol.json"
DEFAULT_RULES_PATH = ROOT / "connector" / "antifraud" / "default_rules.yaml"

PUBLIC_OPERATIONS = frozenset({"getManifest", "listPaymentMethods"})
TEST_SUITE_HEADER = "x-vtex-api-is-testsuite"

PAYMENT_OPERATION_IDS = frozenset(
    {
        "getManifest",
        "listPaymentMethods",
        "createPayment",
        "settlePayment",
        "refundPayment",
        "cancelPayment",
        "cancelPaymentAlias",
        "inboundRequest",
        "inboundRequestAlias",
    }
)

# ----- Gift Card Provider Protocol: served under /giftcard, the Hub's own credentials.
GIFTCARD_TAG = "Gift Card Provider Protocol"
ADMIN_TAG = "Operators"
ADMIN_SECURITY = [{"AdminBearer": []}]
ADMIN_OPERATION_IDS = frozenset(
    {
        "adminListGiftCards",
        "adminIssueGiftCard",
        "adminIssueGiftCards",
        "adminShowGiftCard",
        "adminCreditGiftCard",
        "adminBlockGiftCard",
        "adminUnblockGiftCard",
        # Anti-fraud: the review queue and merchants' rule files.
        "adminListReviews",
        "adminShowReview",
        "adminDecideReview",
        "adminShowRules",
        "adminLoadRules",
    }
)
# ----- Probes and metrics: served from the root, for the orchestrator and Prometheus. Every
# status each answers (connector/app.py: live, ready, metrics_endpoint).
MONITORING_TAG = "Monitoring"
MONITORING_OPERATIONS = {
    ("/health/live", "get"): ("getLiveness", {"200"}),
    ("/health/ready", "get"): ("getReadiness", {"200", "503"}),
    ("/metrics", "get"): ("getMetrics", {"200", "401"}),
}
MONITORING_OPERATION_IDS = frozenset(op for op, _ in MONITORING_OPERATIONS.values())
# Admin operations that create (201) rather than answer (200).
ADMIN_CREATE_OPERATIONS = frozenset(
    {"adminIssueGiftCard", "adminIssueGiftCards", "adminCreditGiftCard"}
)
# Admin operations that can meet a conflict (409): a decided review, a concurrent rules load.
ADMIN_CONFLICT_OPERATIONS = frozenset({"adminDecideReview", "adminLoadRules"})
GIFTCARD_SERVER = "/giftcard"
GIFTCARD_SECURITY = [{"GiftCardHubAppKey": [], "GiftCardHubAppToken": []}]
VENDOR_JSON = "application/vnd.vtex.giftcards.v1+json"
GIFTCARD_MEDIA_TYPES = ("application/json", VENDOR_JSON)
# (our path, VTEX path, method, our operationId). VTEX names the transaction `{tId}` in its
# settlement paths; it is the same id as our `{transactionId}`.
_TRANSACTION = "/giftcards/{giftCardId}/transactions/{transactionId}"
_VTEX_SETTLEMENTS = "/giftcards/{giftCardId}/transactions/{tId}/settlements"
SERVED_VTEX_GIFTCARD_OPERATIONS = (
    ("/giftcards/_search", "/giftcards/_search", "post", "searchGiftCards"),
    ("/giftcards", "/giftcards", "post", "createGiftCard"),
    ("/giftcards/{giftCardId}", "/giftcards/{giftCardId}", "get", "getGiftCard"),
    (
        "/giftcards/{giftCardId}/transactions",
        "/giftcards/{giftCardId}/transactions",
        "get",
        "listGiftCardTransactions",
    ),
    (
        "/giftcards/{giftCardId}/transactions",
        "/giftcards/{giftCardId}/transactions",
        "post",
        "createGiftCardTransaction",
    ),
    (_TRANSACTION, _TRANSACTION, "get", "getGiftCardTransaction"),
    (
        _TRANSACTION + "/authorization",
        _TRANSACTION + "/authorization",
        "get",
        "getGiftCardTransactionAuthorization",
    ),
    (_TRANSACTION + "/settlements", _VTEX_SETTLEMENTS, "get", "listGiftCardSettlements"),
    (_TRANSACTION + "/settlements", _VTEX_SETTLEMENTS, "post", "settleGiftCardTransaction"),
    (_TRANSACTION + "/cancellations", _TRANSACTION + "/cancellations", "get",
     "listGiftCardCancellations"),
    (_TRANSACTION + "/cancellations", _TRANSACTION + "/cancellations", "post",
     "cancelGiftCardTransaction"),
)  # fmt: skip
GIFTCARD_OPERATION_IDS = frozenset(op for _, _, _, op in SERVED_VTEX_GIFTCARD_OPERATIONS)
# Where a reused requestId (409) and a ledger refusal (422) can happen.
GIFTCARD_MONEY_OPERATIONS = frozenset(
    {"createGiftCardTransaction", "settleGiftCardTransaction", "cancelGiftCardTransaction"}
)
# Lists that grow without bound are paged: REST-Range in, REST-Content-Range out.
GIFTCARD_PAGED_OPERATIONS = frozenset({"searchGiftCards", "listGiftCardTransactions"})

# ----- Anti-fraud Provider Protocol: served under /antifraud, written as full paths (its
# `/manifest` and `/transactions` would collide with the Payment Provider Protocol's) under the
# path-level server `/`.
ANTIFRAUD_TAG = "Anti-fraud Provider Protocol"
ANTIFRAUD_PREFIX = "/antifraud/"
ANTIFRAUD_SECURITY = [{"AntifraudAppKey": [], "AntifraudAppToken": []}]
ANTIFRAUD_TEST_SUITE_HEADER = "x-provider-api-is-testsuite"
_AF_TRANSACTION = "/antifraud/transactions/{transactionId}"
# (our path, VTEX path, method, our operationId). VTEX names the path parameter
# `transactions.id`, `transactions.Id` or `transactionId` depending on the method (reference,
# A14.8): the same id, our `{transactionId}`.
SERVED_VTEX_ANTIFRAUD_OPERATIONS = (
    ("/antifraud/manifest", "/manifest", "get", "antifraudManifest"),
    ("/antifraud/pre-analysis", "/pre-analysis", "post", "antifraudPreAnalysis"),
    ("/antifraud/transactions", "/transactions", "post", "antifraudSendTransaction"),
    (_AF_TRANSACTION, "/transactions/{transactions.id}", "get", "antifraudGetTransaction"),
    (_AF_TRANSACTION, "/transactions/{transactionId}", "put", "antifraudUpdateTransaction"),
    (_AF_TRANSACTION, "/transactions/{transactions.Id}", "delete", "antifraudStopTransaction"),
)
ANTIFRAUD_OPERATION_IDS = frozenset(op for _, _, _, op in SERVED_VTEX_ANTIFRAUD_OPERATIONS)
# VTEX's optional OAuth onboarding (reference, A11) is not served.
VTEX_ANTIFRAUD_UNSERVED_TAG = "OAuth Flow"
# Every status each route answers (connector/antifraud/routes.py): 400 for a body or a path id
# it cannot read, 401 without good credentials, 404 for an unknown analysis on GET and, on PUT
# and DELETE, only for a path id with `/` in it (no route), 413 for a body over the limit, 500
# for an unexpected failure. The manifest reads nothing and answers 200.
ANTIFRAUD_STATUSES = {
    "antifraudManifest": {"200"},
    "antifraudPreAnalysis": {"200", "400", "401", "413", "500"},
    "antifraudSendTransaction": {"200", "400", "401", "413", "500"},
    "antifraudGetTransaction": {"200", "400", "401", "404", "500"},
    "antifraudUpdateTransaction": {"200", "400", "401", "404", "413", "500"},
    "antifraudStopTransaction": {"200", "400", "401", "404", "500"},
}
# Deliberate departures from VTEX's anti-fraud schemas, each a contradiction in VTEX's own
# documents (reference, A14). Key: (our operationId, "request" or a status, VTEX property path).
ANTIFRAUD_DEVIATIONS = {
    ("antifraudSendTransaction", "200", "status"): (
        "A5.3: VTEX's schema reuses the pre-analysis enum (approved, denied); its test suite and "
        "older reference expect `received` for a pending analysis, which we add"
    ),
    ("antifraudUpdateTransaction", "200", "responses"): (
        "A8: VTEX's PUT schema types `responses` as a nullable string, its POST and GET schemas "
        "as an object of strings (`Responses`): we always send the object"
    ),
}
# VTEX schema parts that describe nothing real: not compared. Same keys as above.
_SAMPLE_KEYS = (
    "VTEX's `Responses` lists sample keys (`foo`, `custom`) of what is a free dictionary of "
    "strings: the keys are the rules that fired"
)
ANTIFRAUD_NOT_COMPARED = {
    **{
        (operation_id, "200", f"responses.{key}"): _SAMPLE_KEYS
        for operation_id in (
            "antifraudPreAnalysis", "antifraudSendTransaction", "antifraudGetTransaction"
        )
        for key in ("foo", "custom")
    },
    ("antifraudUpdateTransaction", "request", "payments[]"): (
        "VTEX's PUT schema wraps its `Payment` array in another array; its own PUT example sends "
        "one flat array, as POST does (whose schema is compared, and the example is checked)"
    ),
}  # fmt: skip
# VTEX's DELETE answer is a copy of another endpoint's (a list of payment methods, reference A9):
# ours says what the stop did instead, so it is not compared.
ANTIFRAUD_RESPONSES_NOT_COMPARED = frozenset({"antifraudStopTransaction"})
# Names VTEX's request schema requires without defining them: its spec bug, not a field
# (reference A5.1: `sellerId` exists per item, `miniCart.items[].sellerId`, never top-level).
VTEX_ANTIFRAUD_REQUIRED_UNDEFINED = {
    "sellerId": "A5.1: required top-level but never defined; VTEX sends sellerId per item",
}
# Request bodies VTEX sends that its specification's examples do not show: each must be
# accepted by our request schema. The test suite's (reference A13: no `store`, no
# `transactionStartDate`, no `currencyIso4217`, `buyer.id` null) and a gift card payment with
# masked codes and a null address field (A5.1, allowAntifraudOnGiftCard).
_AF_ADDRESS = {"country": "BRA", "street": "Praia de Botafogo St.", "number": "300",
               "complement": "3rd Floor", "neighborhood": "Botafogo", "postalCode": "22250040",
               "city": "Rio de Janeiro", "state": "RJ"}  # fmt: skip
VTEX_ANTIFRAUD_REQUEST_VARIANTS: list[dict[str, Any]] = [
    {"id": "3F2504E04F8911D39A0C0305E82C33011", "reference": "5d0f7d38-6a1f-4a4e-9d43-0b4f1",
     "value": 150.6, "ip": "192.168.0.1", "deviceFingerprint": "12ade389087fexd",
     "miniCart": {"buyer": {"id": None, "firstName": "John", "lastName": "Doe",
                            "document": "01234567890", "documentType": "CPF",
                            "email": "john.doe@example.com", "phone": "+5521987654321",
                            "address": _AF_ADDRESS},
                  "shipping": {"value": 10.3, "estimatedDate": "2017-08-02T14:46:47",
                               "address": _AF_ADDRESS},
                  "items": [{"id": "132981", "name": "Some useful product", "price": 140.3,
                             "quantity": 1, "deliveryType": "Normal",
                             "deliverySlaInMinutes": 4320, "categoryId": "111",
                             "categoryName": "Electronics", "discount": 0}],
                  "taxValue": 0, "listRegistry": {"name": "My Wedding List",
                                                  "deliveryToOwner": False}},
     "payments": [{"id": "5C3A1E9B7D2F4A6C8E0B1D3F5A7C9E2B", "method": "CreditCard",
                   "name": "Visa", "value": 150.6, "installments": 3,
                   "details": {"bin": "486902", "lastDigits": "8214", "holder": "John Doe",
                               "address": _AF_ADDRESS}}],
     "hook": "https://mock.example.com/antifraud-provider/transactions/3F2504E0/hook"},
    {"id": "DDB18D1721914346BF88EJ11B01C6312", "value": 395.71,
     "payments": [{"id": "DDB18D1721914346BF88EJ11B01C6312", "method": "GiftCard",
                   "name": "Gift", "value": 395.71, "installments": 1,
                   "details": {"address": {**_AF_ADDRESS, "neighborhood": None},
                               "giftCardId": "67", "redemptionToken": "FJPI***************",
                               "redemptionCode": "FJPI***************",
                               "provider": "VtexGiftCard"}}]},
    # An older item shape: a numeric category id.
    {"id": "D3AA1FC8372E430E8236649DB5EBD08E", "miniCart": {"items": [{"categoryId": 111}]}},
]  # fmt: skip

# Request bodies VTEX has sent over the years that its current schema's examples do not show
# (reference, B10): each must be accepted by our request schema. Key: our operationId.
VTEX_GIFTCARD_REQUEST_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "searchGiftCards": [
        # Decimal totals, no redemption code, a B2B client.
        {"client": {"id": "3b1abc17", "email": "email@domain.com", "document": "234235",
                    "corporateDocument": "12345678000190"},
         "cart": {"grandTotal": 182.5, "relationName": None, "redemptionCode": None,
                  "discounts": 20.25, "shipping": 2, "taxes": 0, "items": [],
                  "itemsTotal": 200.75}},
        {"client": {"email": "email@domain.com"}, "cart": {}},
    ],
    "createGiftCardTransaction": [
        # 2020's example: no redemption code, the order's sequence as a string.
        {"operation": "Debit", "value": 254.98, "description": "Order v2915869org-02",
         "redemptionToken": "b2dac6f2-f365-48cd-82a9-0b376a55557a", "redemptionCode": None,
         "requestId": "v2915869org-02",
         "orderInfo": {"orderId": "v2915869org-02", "sequence": "2915869",
                       "clientProfile": {"email": "a@b.c", "documentType": "cpf"}}},
        # A load through the Hub's API: no order, no code.
        {"operation": "Credit", "value": 50, "description": "loyalty points",
         "redemptionToken": "b2dac6f2-f365-48cd-82a9-0b376a55557a", "requestId": "load-1"},
    ],
}  # fmt: skip

# (our path, VTEX path, method): every VTEX path we serve. The single-"l" cancellation alias is
# compared with VTEX's "cancellations" operation, since it serves the same requests.
SERVED_VTEX_OPERATIONS = (
    ("/manifest", "/manifest", "get"),
    ("/payments", "/payments", "post"),
    ("/payments/{paymentId}/settlements", "/payments/{paymentId}/settlements", "post"),
    ("/payments/{paymentId}/refunds", "/payments/{paymentId}/refunds", "post"),
    ("/payments/{paymentId}/cancellations", "/payments/{paymentId}/cancellations", "post"),
    ("/payments/{paymentId}/cancelations", "/payments/{paymentId}/cancellations", "post"),
)

# Deliberate departures from VTEX's schema, each contradicted by VTEX's own examples.
# Key: (VTEX path, status, property path); value: why.
KNOWN_RESPONSE_TYPE_DEVIATIONS = {
    ("/payments", "200", "maxValue"): (
        "VTEX's schema says integer, but its callback example sends 16.6: we document number"
    ),
}

# OpenAPI 3.0 keywords that are not JSON Schema validation keywords.


# --------------------------------------------------------------------------------------------
# Loading


def _load_openapi() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "openapi.yaml must contain a mapping"
    return document


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return _load_openapi()


def _load_vtex_spec(path: Path) -> dict[str, Any]:
    if not VTEX_SPECS_DIR.is_dir():
        reason = f"the shared VTEX specs folder {VTEX_SPECS_DIR} is absent"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; it is required when CI=true")
        pytest.skip(f"{reason}: cannot compare openapi.yaml with VTEX's specification")
    assert path.is_file(), f"{path} is missing from {VTEX_SPECS_DIR}"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def vtex_spec() -> dict[str, Any]:
    return _load_vtex_spec(VTEX_SPEC_PATH)


@pytest.fixture(scope="module")
def vtex_giftcard_spec() -> dict[str, Any]:
    return _load_vtex_spec(VTEX_GIFTCARD_SPEC_PATH)


@pytest.fixture(scope="module")
def vtex_antifraud_spec() -> dict[str, Any]:
    return _load_vtex_spec(VTEX_ANTIFRAUD_SPEC_PATH)


# --------------------------------------------------------------------------------------------
# Helpers


def _is_public(operation: dict[str, Any]) -> bool:
    return operation.get("operationId") in PUBLIC_OPERATIONS


def _is_giftcard(operation: dict[str, Any]) -> bool:
    return GIFTCARD_TAG in operation.get("tags", [])


def _is_admin(operation: dict[str, Any]) -> bool:
    return ADMIN_TAG in operation.get("tags", [])


def _is_antifraud(operation: dict[str, Any]) -> bool:
    return ANTIFRAUD_TAG in operation.get("tags", [])


def _is_monitoring(operation: dict[str, Any]) -> bool:
    return MONITORING_TAG in operation.get("tags", [])


def _is_json_media_type(media_type: str) -> bool:
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _json_schema_of(media: dict[str, Any] | None) -> Any:
    """The schema of `application/json`, else of the first `+json` media type (VTEX's gift card
    requests are only described as `application/vnd.vtex.giftcards.v1+json`)."""
    if media is None:
        return None
    content = media.get("content", {})
    if "application/json" in content:
        return content["application/json"].get("schema")
    for media_type, item in content.items():
        if _is_json_media_type(media_type):
            return item.get("schema")
    return None


def _request_schema(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    body = walk.resolve(operation.get("requestBody"), document)
    return _json_schema_of(body)


def _response_schema(document: dict[str, Any], operation: dict[str, Any], status: str) -> Any:
    response = walk.resolve(operation.get("responses", {}).get(status), document)
    return _json_schema_of(response)


def _flatten(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``$ref`` and merge ``allOf`` members into one schema."""
    schema = walk.resolve(schema, root)
    if not isinstance(schema, dict):
        return {}
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties", {}))
    for member in schema["allOf"]:
        flat = _flatten(member, root)
        properties.update(flat.get("properties", {}))
        for key, value in flat.items():
            if key != "properties":
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    return merged


def _base_types(schema: dict[str, Any]) -> set[str]:
    """JSON types a schema admits, without ``null``; empty when unconstrained."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared} - {"null"}
    if isinstance(declared, list):
        return set(declared) - {"null"}
    if "properties" in schema:
        return {"object"}
    if "items" in schema:
        return {"array"}
    return set()


def _is_nullable(schema: dict[str, Any]) -> bool:
    declared = schema.get("type")
    return schema.get("nullable") is True or (isinstance(declared, list) and "null" in declared)


def _accepts(wider: set[str], narrower: set[str]) -> bool:
    """Whether every type of ``narrower`` is accepted by ``wider`` (integer fits in number)."""
    if not wider:
        return True
    return all(t in wider or (t == "integer" and "number" in wider) for t in narrower)


def _compare(
    vtex: Any,
    ours: Any,
    *,
    vtex_root: dict[str, Any],
    our_root: dict[str, Any],
    direction: str,
    where: str,
    problems: list[str],
    allowed: dict[str, str],
    prop_path: str = "",
    skipped: Mapping[str, str] | None = None,
) -> None:
    """Collect every difference between a VTEX schema and ours.

    ``direction`` is ``"request"`` (ours must accept whatever VTEX sends, including ``null``
    where VTEX's schema allows it) or ``"response"`` (VTEX must accept what we send; nullability
    is not compared, because VTEX's descriptions and examples require ``null`` for fields its
    schema marks non-nullable, e.g. ``authorizationId`` or a failed operation's id).
    ``allowed`` property paths keep their own type and enum; ``skipped`` ones are not compared
    at all (each with the reason why).
    """
    skipped = skipped or {}
    if prop_path and prop_path in skipped:
        return
    v = _flatten(vtex, vtex_root)
    o = _flatten(ours, our_root)
    label = f"{where} {prop_path or '<body>'}"
    v_types, o_types = _base_types(v), _base_types(o)
    if v_types and o_types and prop_path not in allowed:
        compatible = (
            _accepts(o_types, v_types) if direction == "request" else _accepts(v_types, o_types)
        )
        if not compatible:
            problems.append(f"{label}: VTEX type {sorted(v_types)}, ours {sorted(o_types)}")
    if direction == "request" and _is_nullable(v) and not _is_nullable(o):
        problems.append(f"{label}: VTEX sends null here, ours is not nullable")
    if "enum" in v and prop_path not in allowed:
        v_enum = sorted(map(str, v["enum"]))
        o_enum = sorted(map(str, o.get("enum", [])))
        if v_enum != o_enum:
            problems.append(f"{label}: VTEX enum {v_enum}, ours {o_enum or 'none'}")
    our_properties = o.get("properties", {})
    for name, sub in v.get("properties", {}).items():
        child = f"{prop_path}.{name}" if prop_path else name
        if child in skipped:
            continue
        if name not in our_properties:
            problems.append(f"{where} {child}: property missing from ours")
            continue
        _compare(
            sub,
            our_properties[name],
            vtex_root=vtex_root,
            our_root=our_root,
            direction=direction,
            where=where,
            problems=problems,
            allowed=allowed,
            prop_path=child,
            skipped=skipped,
        )
    if "items" in v:
        if "items" not in o:
            problems.append(f"{label}: VTEX has array items, ours has none")
            return
        _compare(
            v["items"],
            o["items"],
            vtex_root=vtex_root,
            our_root=our_root,
            direction=direction,
            where=where,
            problems=problems,
            allowed=allowed,
            prop_path=f"{prop_path}[]",
            skipped=skipped,
        )


def _schema_errors(schema: Any, instance: Any, root: dict[str, Any]) -> list[str]:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.Draft4Validator(walk.to_json_schema(schema, root))
    return [
        f"/{'/'.join(map(str, error.instance_path))}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def _media_examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        yield name, example["value"]


def _documented_media(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every media type object with a schema: request bodies and responses, inline or shared."""
    for path, method, operation in walk.operations(document):
        where = f"{method.upper()} {path}"
        body = operation.get("requestBody", {})
        if "$ref" not in body:
            for media_type, media in body.get("content", {}).items():
                yield f"{where} request {media_type}", media
        for status, response in operation.get("responses", {}).items():
            if "$ref" not in response:
                for media_type, media in response.get("content", {}).items():
                    yield f"{where} {status} {media_type}", media
    components = document.get("components", {})
    for kind in ("requestBodies", "responses"):
        for name, item in components.get(kind, {}).items():
            for media_type, media in item.get("content", {}).items():
                yield f"components/{kind}/{name} {media_type}", media


# --------------------------------------------------------------------------------------------
# The document itself


def test_openapi_yaml_is_a_valid_openapi_30_document(openapi: dict[str, Any]) -> None:
    assert str(openapi.get("openapi", "")).startswith("3.0."), "must stay OpenAPI 3.0.x"
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        validator = importlib.import_module("openapi_spec_validator")
        validator.validate(openapi)
        return
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    schema.validate()  # OpenAPI 3.0 meta-schema validation
    broken = [str(result.err()) for result in schema.get_all_operations() if hasattr(result, "err")]
    assert not broken, "operations schemathesis cannot load:\n" + "\n".join(broken)


def test_server_security_schemes_and_global_security(openapi: dict[str, Any]) -> None:
    # The global server is the Payment Provider Protocol's; gift card paths override it.
    assert openapi["servers"] == [
        {"url": "/payment-provider", "description": openapi["servers"][0].get("description")}
    ]
    schemes = openapi["components"]["securitySchemes"]
    expected_headers = {
        "VtexAppKey": "X-VTEX-API-AppKey",
        "VtexAppToken": "X-VTEX-API-AppToken",
        "ProviderAppKey": "X-PROVIDER-API-AppKey",
        "ProviderAppToken": "X-PROVIDER-API-AppToken",
        "GiftCardHubAppKey": "X-PROVIDER-API-AppKey",
        "GiftCardHubAppToken": "X-PROVIDER-API-AppToken",
        "AntifraudAppKey": "X-PROVIDER-API-AppKey",
        "AntifraudAppToken": "X-PROVIDER-API-AppToken",
    }
    for name, header in expected_headers.items():
        scheme = schemes[name]
        assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", header)
    assert openapi["security"] == [
        {"VtexAppKey": [], "VtexAppToken": []},
        {"ProviderAppKey": [], "ProviderAppToken": []},
    ]


def test_operation_ids_are_unique_and_expected(openapi: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in walk.operations(openapi)]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {ids}"
    assert set(ids) == (
        PAYMENT_OPERATION_IDS
        | GIFTCARD_OPERATION_IDS
        | ANTIFRAUD_OPERATION_IDS
        | ADMIN_OPERATION_IDS
        | MONITORING_OPERATION_IDS
    )
    for _, _, operation in walk.operations(openapi):
        # One API per operation, told by its tag.
        operation_id = operation["operationId"]
        expected_tag = "Payment Flow"
        if operation_id in GIFTCARD_OPERATION_IDS:
            expected_tag = GIFTCARD_TAG
        elif operation_id in ANTIFRAUD_OPERATION_IDS:
            expected_tag = ANTIFRAUD_TAG
        elif operation_id in ADMIN_OPERATION_IDS:
            expected_tag = ADMIN_TAG
        elif operation_id in MONITORING_OPERATION_IDS:
            expected_tag = MONITORING_TAG
        assert operation.get("tags") == [expected_tag], operation_id


def test_documented_statuses(openapi: dict[str, Any]) -> None:
    """The Payment Provider Protocol's operations (the gift card, anti-fraud, admin and
    monitoring ones: below)."""
    problems: list[str] = []
    for path, method, operation in walk.operations(openapi):
        if (
            _is_giftcard(operation)
            or _is_antifraud(operation)
            or _is_admin(operation)
            or _is_monitoring(operation)
        ):
            continue
        where = f"{method.upper()} {path}"
        statuses = set(operation.get("responses", {}))
        if _is_public(operation):
            if operation.get("security") != []:
                problems.append(f"{where}: public operation must declare security: []")
            continue
        if "security" in operation:
            problems.append(f"{where}: authenticated operation must use the global security")
        required = {"401"}
        if method == "post":
            required |= {"400", "413", "500"}
        if path.startswith("/payments/{paymentId}/"):
            required.add("404")
        missing = sorted(required - statuses)
        if missing:
            problems.append(f"{where}: missing responses {missing}")
        header_names = {p["name"].lower() for p in walk.parameters(openapi, path, operation)}
        if TEST_SUITE_HEADER not in header_names:
            problems.append(f"{where}: X-VTEX-API-Is-TestSuite header is not documented")
    assert not problems, "\n".join(problems)


def test_documented_giftcard_statuses(openapi: dict[str, Any]) -> None:
    """Every status a gift card route can answer, with its body: 401 and 403 empty (the Hub's
    requirement), every other error the `Error` shape."""
    problems: list[str] = []
    checked = 0
    for path, method, operation in walk.operations(openapi):
        if not _is_giftcard(operation):
            continue
        checked += 1
        where = f"{method.upper()} {path}"
        responses = operation.get("responses", {})
        if operation.get("security") != GIFTCARD_SECURITY:
            problems.append(f"{where}: must require both Gift Card Hub credential headers")
        required = {"200", "400", "401", "403", "500"}
        if method == "post":
            required.add("413")
        if "{giftCardId}" in path:
            required.add("404")
        if operation["operationId"] in GIFTCARD_MONEY_OPERATIONS:
            required |= {"409", "422"}
        missing = sorted(required - set(responses))
        if missing:
            problems.append(f"{where}: missing responses {missing}")
        unexpected = sorted(set(responses) - required)
        if unexpected:
            problems.append(f"{where}: responses the service never gives {unexpected}")
        for status, response in responses.items():
            resolved = walk.resolve(response, openapi)
            if status in ("401", "403"):
                if "content" in resolved:
                    problems.append(f"{where} {status}: must have an empty body (no content)")
                continue
            content = resolved.get("content", {})
            if list(content) != ["application/json"]:
                problems.append(f"{where} {status}: answers application/json only, not {content}")
                continue
            schema = content["application/json"].get("schema", {})
            if status != "200" and schema != {"$ref": "#/components/schemas/Error"}:
                problems.append(f"{where} {status}: error answers have the Error body")
        header_names = {p["name"].lower() for p in walk.parameters(openapi, path, operation)}
        if TEST_SUITE_HEADER in header_names:
            problems.append(f"{where}: the Payment Provider Test Suite header does not apply")
    assert checked == len(GIFTCARD_OPERATION_IDS)
    assert not problems, "\n".join(problems)


def test_documented_admin_statuses(openapi: dict[str, Any]) -> None:
    """The admin API: bearer token, 401 without it, 400 and 413 on bodies, 404 for unknown
    cards, analyses and merchants, 409 where a review or a rules load can conflict, every error
    the `Error` shape."""
    problems: list[str] = []
    checked = 0
    for path, method, operation in walk.operations(openapi):
        if not _is_admin(operation):
            continue
        checked += 1
        where = f"{method.upper()} {path}"
        responses = operation.get("responses", {})
        if operation.get("security") != ADMIN_SECURITY:
            problems.append(f"{where}: must require the admin bearer token")
        operation_id = operation["operationId"]
        success = "201" if operation_id in ADMIN_CREATE_OPERATIONS else "200"
        required = {success, "400", "401", "404"}
        if method in ("post", "put"):
            required.add("413")
        if operation_id == "adminCreditGiftCard":
            required.add("422")
        if operation_id in ADMIN_CONFLICT_OPERATIONS:
            required.add("409")
        if set(responses) != required:
            problems.append(f"{where}: responses {sorted(responses)}, expected {sorted(required)}")
        for status, response in responses.items():
            content = walk.resolve(response, openapi).get("content", {})
            if list(content) != ["application/json"]:
                problems.append(f"{where} {status}: answers application/json only")
            elif status[0] == "4" and content["application/json"].get("schema") != {
                "$ref": "#/components/schemas/Error"
            }:
                problems.append(f"{where} {status}: error answers have the Error body")
    assert checked == len(ADMIN_OPERATION_IDS)
    assert not problems, "\n".join(problems)


def test_documented_monitoring_operations(openapi: dict[str, Any]) -> None:
    """The probes and `/metrics`: from the root (server `/`), no credentials for the probes,
    the optional metrics bearer token for `/metrics`, every status they answer and no other."""
    documented = {
        (path, method): operation
        for path, method, operation in walk.operations(openapi)
        if _is_monitoring(operation)
    }
    assert set(documented) == set(MONITORING_OPERATIONS)
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["MetricsBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["MetricsBearer"]["description"],
    }
    problems: list[str] = []
    for (path, method), operation in documented.items():
        operation_id, statuses = MONITORING_OPERATIONS[(path, method)]
        where = f"{method.upper()} {path}"
        if operation["operationId"] != operation_id:
            problems.append(f"{where}: operationId {operation['operationId']}")
        if [server["url"] for server in openapi["paths"][path].get("servers", [])] != ["/"]:
            problems.append(f"{where}: served from the root, under the server /")
        security = [{}, {"MetricsBearer": []}] if path == "/metrics" else []
        if operation.get("security") != security:
            problems.append(f"{where}: security must be {security}")
        if set(operation["responses"]) != statuses:
            problems.append(f"{where}: responses {sorted(operation['responses'])}")
        for status, response in operation["responses"].items():
            content = walk.resolve(response, openapi).get("content", {})
            expected = (
                ["text/plain"] if (path, status) == ("/metrics", "200") else ["application/json"]
            )
            if list(content) != expected:
                problems.append(f"{where} {status}: content {list(content)}, not {expected}")
    assert not problems, "\n".join(problems)


def test_giftcard_paths_are_served_under_giftcard(openapi: dict[str, Any]) -> None:
    """Every gift card path item overrides the global server with `/giftcard`; the anti-fraud
    and admin path items name their full paths (`/antifraud/...`, `/admin/...`) under the server
    `/`; no payment path overrides the global server, and no path mixes protocols."""
    problems: list[str] = []
    for path, item in openapi["paths"].items():
        operations = [item[m] for m in walk.HTTP_METHODS if m in item]
        if all(_is_monitoring(operation) for operation in operations):
            continue  # served from the root: test_documented_monitoring_operations
        for prefix, is_it in (("/admin/", _is_admin), (ANTIFRAUD_PREFIX, _is_antifraud)):
            if path.startswith(prefix) or any(is_it(operation) for operation in operations):
                # Mounted at /admin and /antifraud: full paths from the root.
                urls = [server.get("url") for server in item.get("servers", [])]
                if urls != ["/"] or not path.startswith(prefix):
                    problems.append(f"{path}: {prefix} paths start with {prefix} under server /")
                if not all(is_it(operation) for operation in operations):
                    problems.append(f"{path}: mixes protocols")
                if any("servers" in operation for operation in operations):
                    problems.append(f"{path}: the server is set on the path item only")
                break
        else:
            problems += _giftcard_or_payment_path_problems(path, item, operations)
    served = {(path, method) for path, _, method, _ in SERVED_VTEX_GIFTCARD_OPERATIONS}
    documented = {
        (path, method)
        for path, method, operation in walk.operations(openapi)
        if _is_giftcard(operation)
    }
    assert documented == served
    antifraud = {
        (path, method)
        for path, method, operation in walk.operations(openapi)
        if _is_antifraud(operation)
    }
    assert antifraud == {(path, method) for path, _, method, _ in SERVED_VTEX_ANTIFRAUD_OPERATIONS}
    assert not problems, "\n".join(problems)


def _giftcard_or_payment_path_problems(
    path: str, item: dict[str, Any], operations: list[dict[str, Any]]
) -> list[str]:
    """A gift card path item has the server `/giftcard`; a payment one the global server."""
    giftcard = {_is_giftcard(operation) for operation in operations}
    if len(giftcard) != 1:
        return [f"{path}: mixes protocols"]
    problems: list[str] = []
    urls = [server.get("url") for server in item.get("servers", [])]
    if giftcard == {True}:
        if urls != [GIFTCARD_SERVER]:
            problems.append(f"{path}: servers {urls}, expected [{GIFTCARD_SERVER!r}]")
        if not path.startswith("/giftcards"):
            problems.append(f"{path}: a gift card path outside /giftcards")
        if any("servers" in operation for operation in operations):
            problems.append(f"{path}: the server is set on the path item, not per operation")
    elif urls:
        problems.append(f"{path}: a payment path must use the global server, not {urls}")
    return problems


def test_giftcard_request_bodies_accept_both_json_media_types(openapi: dict[str, Any]) -> None:
    """The Hub sends `application/vnd.vtex.giftcards.v1+json`; `application/json` is accepted as
    well. Both are described with the same schema."""
    problems: list[str] = []
    for path, method, operation in walk.operations(openapi):
        if not _is_giftcard(operation):
            continue
        where = f"{method.upper()} {path}"
        body = walk.resolve(operation.get("requestBody"), openapi)
        if method == "get":
            if body is not None:
                problems.append(f"{where}: a GET has no body")
            continue
        if body is None or body.get("required") is not True:
            problems.append(f"{where}: a required request body must be documented")
            continue
        content = body["content"]
        if sorted(content) != sorted(GIFTCARD_MEDIA_TYPES):
            problems.append(f"{where}: media types {sorted(content)}")
            continue
        schemas = {json.dumps(content[media_type]["schema"]) for media_type in content}
        if len(schemas) != 1:
            problems.append(f"{where}: the media types have different schemas")
        if not all(list(_media_examples(content[media_type])) for media_type in content):
            problems.append(f"{where}: every media type needs an example")
    assert not problems, "\n".join(problems)


def test_giftcard_headers_and_parameters(openapi: dict[str, Any]) -> None:
    """REST-Range in and REST-Content-Range out on the paged lists, Cache-Control on every 200,
    the ignored `ts` on GET by id, and nothing else the Hub would have to send."""
    problems: list[str] = []
    for path, _, operation in walk.operations(openapi):
        if not _is_giftcard(operation):
            continue
        operation_id = operation["operationId"]
        parameters = {(p["in"], p["name"]): p for p in walk.parameters(openapi, path, operation)}
        expected = {("path", name) for name in re.findall(r"{(\w+)}", path)}
        if operation_id in GIFTCARD_PAGED_OPERATIONS:
            expected.add(("header", "REST-Range"))
        if operation_id == "getGiftCard":
            expected.add(("query", "ts"))
        if set(parameters) != expected:
            problems.append(f"{operation_id}: parameters {sorted(parameters)}, not {expected}")
        for (location, name), parameter in parameters.items():
            if location != "path" and parameter.get("required", False):
                problems.append(f"{operation_id}: {name} must be optional")
        headers = {
            name: walk.resolve(header, openapi)
            for name, header in walk.resolve(operation["responses"]["200"], openapi)
            .get("headers", {})
            .items()
        }
        expected_headers = {"Cache-Control"}
        if operation_id in GIFTCARD_PAGED_OPERATIONS:
            expected_headers.add("REST-Content-Range")
        if set(headers) != expected_headers:
            problems.append(f"{operation_id}: 200 headers {sorted(headers)}")
        for name, header in headers.items():
            if header.get("required") is not True:
                problems.append(f"{operation_id}: the 200's {name} is always sent (required)")
            errors = _schema_errors(header["schema"], header.get("example"), openapi)
            problems += [f"{operation_id}: {name} example {e}" for e in errors]
    range_header = openapi["components"]["parameters"]["RestRange"]
    assert re.fullmatch(range_header["schema"]["pattern"], "resources=0-49")
    content_range = openapi["components"]["headers"]["RestContentRange"]["schema"]["pattern"]
    assert re.fullmatch(content_range, "resources 0-0/0")
    assert re.fullmatch(content_range, "resources 50-99/1234")
    assert not problems, "\n".join(problems)


def test_test_suite_header_parameter(openapi: dict[str, Any]) -> None:
    for path, _, operation in walk.operations(openapi):
        for parameter in walk.parameters(openapi, path, operation):
            if parameter["name"].lower() == TEST_SUITE_HEADER:
                assert parameter["in"] == "header"
                assert parameter.get("required", False) is False
                assert parameter["schema"] == {"type": "string", "enum": ["true", "false"]}


def test_error_schema_is_vtex_fail_bad_request_shape(openapi: dict[str, Any]) -> None:
    error = openapi["components"]["schemas"]["Error"]
    assert error["type"] == "object"
    assert sorted(error["required"]) == ["code", "message", "status"]
    assert error["properties"]["status"]["enum"] == ["error"]
    assert error["properties"]["code"]["type"] == "string"
    assert error["properties"]["message"]["type"] == "string"


def test_cancellation_alias_has_the_same_definition(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    main = paths["/payments/{paymentId}/cancellations"]
    alias = paths["/payments/{paymentId}/cancelations"]
    assert main["parameters"] == alias["parameters"]
    for key in ("parameters", "requestBody", "responses", "tags", "security"):
        assert main["post"].get(key) == alias["post"].get(key), f"alias differs in {key}"


# What a link may feed each parameter with: the id the source answered, or the one it was called
# with. Key: the target's parameter.
LINK_EXPRESSIONS = {
    "paymentId": {"$response.body#/paymentId"},
    "giftCardId": {"$response.body#/id", "$request.path.giftCardId"},
    "transactionId": {"$response.body#/id", "$request.path.transactionId"},
}


def _link_expression_problem(
    expression: str, path: str, operation: dict[str, Any], status: str, root: dict[str, Any]
) -> str | None:
    """Why `expression` cannot be evaluated on the source operation's `status` answer."""
    if expression.startswith("$request.path."):
        name = expression.removeprefix("$request.path.")
        names = {p["name"] for p in walk.parameters(root, path, operation) if p["in"] == "path"}
        return None if name in names else f"the source has no path parameter {name!r}"
    if expression.startswith("$response.body#/"):
        pointer = expression.removeprefix("$response.body#/")
        schema = _flatten(_response_schema(root, operation, status), root)
        if pointer not in schema.get("properties", {}) or pointer not in schema.get("required", []):
            return f"the source's {status} body does not always have {pointer!r}"
        return None
    return "unsupported expression"


def test_links_point_to_existing_operations_and_parameters(openapi: dict[str, Any]) -> None:
    by_id = {
        operation["operationId"]: (path, operation)
        for path, _, operation in walk.operations(openapi)
    }
    found: set[tuple[str, str]] = set()
    problems: list[str] = []
    for source_path, _, operation in walk.operations(openapi):
        for status, response in operation.get("responses", {}).items():
            for name, link in walk.resolve(response, openapi).get("links", {}).items():
                source = f"{operation['operationId']} {status} link {name}"
                target = link.get("operationId")
                if target not in by_id:
                    problems.append(f"{source}: unknown operationId {target!r}")
                    continue
                found.add((operation["operationId"], target))
                path, target_operation = by_id[target]
                if operation.get("tags") != target_operation.get("tags"):
                    problems.append(f"{source}: links two protocols")
                names = {p["name"] for p in walk.parameters(openapi, path, target_operation)}
                required = {
                    p["name"]
                    for p in walk.parameters(openapi, path, target_operation)
                    if p["in"] == "path"
                }
                if not required <= set(link.get("parameters", {})):
                    problems.append(f"{source}: {target}'s path parameters are not all given")
                for parameter, expression in link.get("parameters", {}).items():
                    if parameter not in names:
                        problems.append(f"{source}: {target} has no parameter {parameter!r}")
                    if expression not in LINK_EXPRESSIONS.get(parameter, set()):
                        problems.append(f"{source}: unexpected expression {expression!r}")
                        continue
                    why = _link_expression_problem(
                        expression, source_path, operation, status, openapi
                    )
                    if why:
                        problems.append(f"{source}: {expression}: {why}")
    expected = {
        ("createPayment", "settlePayment"),
        ("createPayment", "refundPayment"),
        ("createPayment", "cancelPayment"),
        ("settlePayment", "refundPayment"),
        # The Hub's flow: a Debit, then GET and POST its settlements or cancellations.
        ("createGiftCardTransaction", "settleGiftCardTransaction"),
        ("createGiftCardTransaction", "cancelGiftCardTransaction"),
        ("createGiftCardTransaction", "listGiftCardSettlements"),
        ("createGiftCardTransaction", "listGiftCardCancellations"),
        ("createGiftCardTransaction", "getGiftCardTransaction"),
        ("createGiftCardTransaction", "getGiftCardTransactionAuthorization"),
        ("settleGiftCardTransaction", "cancelGiftCardTransaction"),
        ("createGiftCard", "getGiftCard"),
        ("createGiftCard", "createGiftCardTransaction"),
        # VTEX's anti-fraud flow: an analysis, then its status reads, updates and stop.
        ("antifraudSendTransaction", "antifraudGetTransaction"),
        ("antifraudSendTransaction", "antifraudUpdateTransaction"),
        ("antifraudSendTransaction", "antifraudStopTransaction"),
    }
    missing = expected - found
    if missing:
        problems.append(f"missing links: {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_every_example_matches_its_schema(openapi: dict[str, Any]) -> None:
    problems: list[str] = []
    checked = 0
    for where, media in _documented_media(openapi):
        schema = media.get("schema")
        if schema is None:
            continue
        for name, example in _media_examples(media):
            checked += 1
            problems += [f"{where} [{name}] {e}" for e in _schema_errors(schema, example, openapi)]
    for path, _, operation in walk.operations(openapi):
        for parameter in walk.parameters(openapi, path, operation):
            if "example" in parameter:
                checked += 1
                errors = _schema_errors(parameter["schema"], parameter["example"], openapi)
                problems += [f"{path} parameter {parameter['name']}: {e}" for e in errors]
    assert checked > 20, f"only {checked} examples found"
    assert not problems, "\n".join(problems)


def test_test_suite_request_examples(openapi: dict[str, Any]) -> None:
    media = openapi["paths"]["/payments"]["post"]["requestBody"]["content"]["application/json"]
    examples = {name: example["value"] for name, example in media["examples"].items()}
    expected_cards = {
        "TestSuiteApproved": "4444333322221111",
        "TestSuiteDenied": "4444333322221112",
    }
    payment_ids: set[str] = set()
    for name, card_number in expected_cards.items():
        body = examples[name]
        assert body["card"]["number"] == card_number
        assert (body["paymentMethod"], body["value"], body["currency"]) == ("Visa", 31.9, "BRL")
        assert re.fullmatch(r"[0-9A-F]{32}", body["paymentId"]), body["paymentId"]
        payment_ids.add(body["paymentId"])
    assert len(payment_ids) == len(expected_cards), "each example needs its own paymentId"


# --------------------------------------------------------------------------------------------
# Agreement with VTEX's specification


@pytest.mark.parametrize(
    ("our_path", "vtex_path", "method"),
    SERVED_VTEX_OPERATIONS,
    ids=[f"{method.upper()} {path}" for path, _, method in SERVED_VTEX_OPERATIONS],
)
def test_agrees_with_vtex_spec(
    openapi: dict[str, Any],
    vtex_spec: dict[str, Any],
    our_path: str,
    vtex_path: str,
    method: str,
) -> None:
    """Every property of VTEX's request and response schemas exists in ours, same type and enum.

    Responses are compared for every status both documents describe (VTEX's 501 "do it manually"
    is not something this service answers).
    """
    problems = _differences_with_vtex(openapi, vtex_spec, our_path, vtex_path, method)
    assert not problems, f"{len(problems)} difference(s) with VTEX's spec:\n" + "\n".join(problems)


def _differences_with_vtex(
    openapi: dict[str, Any],
    vtex_spec: dict[str, Any],
    our_path: str,
    vtex_path: str,
    method: str,
    *,
    deviations: Mapping[tuple[str, str], str] | None = None,
    not_compared: Mapping[tuple[str, str], str] | None = None,
    compare_responses: bool = True,
) -> list[str]:
    """``deviations`` and ``not_compared``: by (``"request"`` or a status, property path), the
    properties whose type and enum are ours on purpose, and those not compared at all."""
    vtex_operation = vtex_spec["paths"][vtex_path][method]
    our_operation = openapi["paths"][our_path][method]
    problems: list[str] = []
    where = f"{method.upper()} {our_path}"

    def of(section: str, table: Mapping[tuple[str, str], str] | None) -> dict[str, str]:
        return {prop: why for (part, prop), why in (table or {}).items() if part == section}

    vtex_request = _request_schema(vtex_spec, vtex_operation)
    if vtex_request is not None:
        our_body = walk.resolve(our_operation.get("requestBody"), openapi)
        our_requests = [
            (media_type, media.get("schema"))
            for media_type, media in (our_body or {}).get("content", {}).items()
            if _is_json_media_type(media_type)
        ]
        if not our_requests:
            problems.append(f"{where} request: no JSON request body documented")
        for media_type, our_request in our_requests:
            _compare(
                vtex_request,
                our_request,
                vtex_root=vtex_spec,
                our_root=openapi,
                direction="request",
                where=f"{where} request {media_type}",
                problems=problems,
                allowed=of("request", deviations),
                skipped=of("request", not_compared),
            )

    compared = 0
    for status in vtex_operation.get("responses", {}) if compare_responses else ():
        vtex_response = _response_schema(vtex_spec, vtex_operation, status)
        if vtex_response is None or status not in our_operation.get("responses", {}):
            continue
        our_response = _response_schema(openapi, our_operation, status)
        if our_response is None:
            problems.append(f"{where} {status}: no JSON response schema documented")
            continue
        compared += 1
        allowed = {
            prop: why
            for (path, code, prop), why in KNOWN_RESPONSE_TYPE_DEVIATIONS.items()
            if path == vtex_path and code == status
        } | of(status, deviations)
        _compare(
            vtex_response,
            our_response,
            vtex_root=vtex_spec,
            our_root=openapi,
            direction="response",
            where=f"{where} {status}",
            problems=problems,
            allowed=allowed,
            skipped=of(status, not_compared),
        )
    if "200" not in our_operation.get("responses", {}):
        problems.append(f"{where}: 200 response not documented")
    if compare_responses and not compared:
        problems.append(f"{where}: no response compared with VTEX's")
    return problems


def test_vtex_request_examples_are_accepted(
    openapi: dict[str, Any], vtex_spec: dict[str, Any]
) -> None:
    """Our lenient request schemas accept every request example VTEX publishes."""
    problems: list[str] = []
    checked = 0
    for our_path, vtex_path, method in SERVED_VTEX_OPERATIONS:
        vtex_operation = vtex_spec["paths"][vtex_path][method]
        body = walk.resolve(vtex_operation.get("requestBody"), vtex_spec)
        if body is None:
            continue
        media = body["content"]["application/json"]
        samples = list(_media_examples(media))
        schema = walk.resolve(media.get("schema"), vtex_spec)
        if isinstance(schema, dict) and "example" in schema:
            samples.append(("schema example", schema["example"]))
        our_schema = _request_schema(openapi, openapi["paths"][our_path][method])
        for name, sample in samples:
            checked += 1
            errors = _schema_errors(our_schema, sample, openapi)
            problems += [f"{method.upper()} {our_path} [{name}] {e}" for e in errors]
    assert checked >= 10, f"only {checked} VTEX examples found"
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Agreement with VTEX's Gift Card Provider Protocol specification


def test_every_vtex_giftcard_operation_is_served(vtex_giftcard_spec: dict[str, Any]) -> None:
    vtex = {(path, method) for path, method, _ in walk.operations(vtex_giftcard_spec)}
    assert vtex == {(path, method) for _, path, method, _ in SERVED_VTEX_GIFTCARD_OPERATIONS}


@pytest.mark.parametrize(
    ("our_path", "vtex_path", "method", "operation_id"),
    SERVED_VTEX_GIFTCARD_OPERATIONS,
    ids=[op for _, _, _, op in SERVED_VTEX_GIFTCARD_OPERATIONS],
)
def test_agrees_with_vtex_giftcard_spec(
    openapi: dict[str, Any],
    vtex_giftcard_spec: dict[str, Any],
    our_path: str,
    vtex_path: str,
    method: str,
    operation_id: str,
) -> None:
    """Same path and method; every property VTEX lists for the request body (either media type)
    and the 200 response exists in ours with a compatible type."""
    assert openapi["paths"][our_path][method]["operationId"] == operation_id
    vtex_parameters = {
        p["name"]
        for p in walk.parameters(vtex_giftcard_spec, vtex_path, vtex_giftcard_spec["paths"]
                                 [vtex_path][method])
        if p["in"] == "path"
    }  # fmt: skip
    our_parameters = {
        p["name"]
        for p in walk.parameters(openapi, our_path, openapi["paths"][our_path][method])
        if p["in"] == "path"
    }
    assert our_parameters == {"transactionId" if n == "tId" else n for n in vtex_parameters}
    problems = _differences_with_vtex(openapi, vtex_giftcard_spec, our_path, vtex_path, method)
    assert not problems, f"{len(problems)} difference(s) with VTEX's spec:\n" + "\n".join(problems)


def _example_from_properties(schema: Any, root: dict[str, Any]) -> Any:
    """An instance assembled from a schema's `example`s, as VTEX's documentation shows its
    request bodies (its gift card spec has examples on properties only)."""
    schema = _flatten(schema, root)
    if "example" in schema:
        return schema["example"]
    if "properties" in schema:
        return {
            name: _example_from_properties(sub, root)
            for name, sub in schema["properties"].items()
            if _example_from_properties(sub, root) is not _NO_EXAMPLE
        }
    if "items" in schema:
        item = _example_from_properties(schema["items"], root)
        return [] if item is _NO_EXAMPLE else [item]
    return _NO_EXAMPLE


_NO_EXAMPLE = object()


def test_vtex_giftcard_request_examples_are_accepted(
    openapi: dict[str, Any], vtex_giftcard_spec: dict[str, Any]
) -> None:
    """Our lenient request schemas accept what VTEX documents the Hub sends: the request bodies
    its property examples make up, and the variants of older VTEX examples."""
    problems: list[str] = []
    checked = 0
    for our_path, vtex_path, method, operation_id in SERVED_VTEX_GIFTCARD_OPERATIONS:
        vtex_operation = vtex_giftcard_spec["paths"][vtex_path][method]
        vtex_schema = _request_schema(vtex_giftcard_spec, vtex_operation)
        if vtex_schema is None:
            continue
        sample = _example_from_properties(vtex_schema, vtex_giftcard_spec)
        assert isinstance(sample, dict) and sample, f"{operation_id}: no VTEX example"
        samples = [("VTEX's property examples", sample)]
        samples += [
            (f"variant {number}", variant)
            for number, variant in enumerate(VTEX_GIFTCARD_REQUEST_VARIANTS.get(operation_id, []))
        ]
        body = walk.resolve(openapi["paths"][our_path][method]["requestBody"], openapi)
        for media_type, media in body["content"].items():
            for name, instance in samples:
                checked += 1
                errors = _schema_errors(media["schema"], instance, openapi)
                problems += [f"{operation_id} {media_type} [{name}] {e}" for e in errors]
    assert checked >= 2 * (5 + 3), f"only {checked} VTEX examples checked"
    assert not problems, "\n".join(problems)


def test_vtex_giftcard_example_bodies_are_complete(vtex_giftcard_spec: dict[str, Any]) -> None:
    """The assembled VTEX examples carry what the service needs (else the previous test would
    prove little): a Debit with its token and requestId, an order with a client profile."""
    operation = vtex_giftcard_spec["paths"]["/giftcards/{giftCardId}/transactions"]["post"]
    debit = _example_from_properties(_request_schema(vtex_giftcard_spec, operation),
                                     vtex_giftcard_spec)  # fmt: skip
    assert debit["operation"] == "Debit" and debit["value"] == 3
    assert debit["redemptionToken"] and debit["requestId"]
    assert debit["orderInfo"]["clientProfile"]["email"] == "michael.scott96@mail.com"
    assert debit["orderInfo"]["cart"]["items"][0]["priceTags"][0]["value"] == 0


# --------------------------------------------------------------------------------------------
# The Anti-fraud Provider Protocol


def test_documented_antifraud_statuses(openapi: dict[str, Any]) -> None:
    """Every status an anti-fraud route answers, and only those; the protocol's credentials
    (none on the manifest; none allowed too on status reads, VTEX's test suite reads so); JSON
    bodies, the `Error` shape on every error; `Cache-Control: no-store` on every 200."""
    problems: list[str] = []
    checked = 0
    for path, method, operation in walk.operations(openapi):
        if not _is_antifraud(operation):
            continue
        checked += 1
        operation_id = operation["operationId"]
        where = f"{operation_id} ({method.upper()} {path})"
        responses = operation.get("responses", {})
        if set(responses) != ANTIFRAUD_STATUSES[operation_id]:
            problems.append(
                f"{where}: responses {sorted(responses)}, "
                f"expected {sorted(ANTIFRAUD_STATUSES[operation_id])}"
            )
        security = {
            "antifraudManifest": [],
            "antifraudGetTransaction": [*ANTIFRAUD_SECURITY, {}],
        }.get(operation_id, ANTIFRAUD_SECURITY)
        if operation.get("security") != security:
            problems.append(f"{where}: security {operation.get('security')}, not {security}")
        for status, response in responses.items():
            resolved = walk.resolve(response, openapi)
            content = resolved.get("content", {})
            if list(content) != ["application/json"]:
                problems.append(f"{where} {status}: answers application/json only")
                continue
            schema = content["application/json"].get("schema")
            if status != "200" and schema != {"$ref": "#/components/schemas/Error"}:
                problems.append(f"{where} {status}: error answers have the Error body")
            headers = resolved.get("headers", {})
            if status == "200" and headers != {
                "Cache-Control": {"$ref": "#/components/headers/NoStore"}
            }:
                problems.append(f"{where} 200: must declare Cache-Control: no-store, only")
        body = walk.resolve(operation.get("requestBody"), openapi)
        if method in ("post", "put"):
            if body is None or body.get("required") is not True:
                problems.append(f"{where}: a required request body must be documented")
            elif list(body["content"]) != ["application/json"]:
                problems.append(f"{where}: the order is application/json only")
        elif body is not None:
            problems.append(f"{where}: no request body")
    assert checked == len(ANTIFRAUD_OPERATION_IDS)
    assert not problems, "\n".join(problems)


def test_antifraud_parameters(openapi: dict[str, Any]) -> None:
    """The path's `transactionId` (bounded as the service bounds it) and, where it changes the
    analysis (POST and PUT), the optional test-suite header; nothing else to send."""
    problems: list[str] = []
    for path, _, operation in walk.operations(openapi):
        if not _is_antifraud(operation):
            continue
        operation_id = operation["operationId"]
        parameters = {(p["in"], p["name"]): p for p in walk.parameters(openapi, path, operation)}
        expected = {("path", name) for name in re.findall(r"{(\w+)}", path)}
        if operation_id in ("antifraudSendTransaction", "antifraudUpdateTransaction"):
            expected.add(("header", "X-PROVIDER-API-IS-TESTSUITE"))
        if set(parameters) != expected:
            problems.append(f"{operation_id}: parameters {sorted(parameters)}, not {expected}")
        for (location, name), parameter in parameters.items():
            if location == "header":
                assert name.lower() == ANTIFRAUD_TEST_SUITE_HEADER
                if parameter.get("required", False):
                    problems.append(f"{operation_id}: {name} must be optional")
                if parameter["schema"] != {"type": "string", "enum": ["true", "false"]}:
                    problems.append(f"{operation_id}: {name} is 'true' or 'false'")
            elif parameter["schema"] != {"type": "string", "minLength": 1, "maxLength": 255}:
                problems.append(f"{operation_id}: {name} is 1 to 255 characters")
    assert not problems, "\n".join(problems)


def test_every_vtex_antifraud_operation_is_served(vtex_antifraud_spec: dict[str, Any]) -> None:
    """Every call of VTEX's anti-fraud flow; its optional OAuth onboarding is not served."""
    vtex = {
        (path, method)
        for path, method, operation in walk.operations(vtex_antifraud_spec)
        if VTEX_ANTIFRAUD_UNSERVED_TAG not in operation.get("tags", [])
    }
    assert vtex == {(path, method) for _, path, method, _ in SERVED_VTEX_ANTIFRAUD_OPERATIONS}


@pytest.mark.parametrize(
    ("our_path", "vtex_path", "method", "operation_id"),
    SERVED_VTEX_ANTIFRAUD_OPERATIONS,
    ids=[op for _, _, _, op in SERVED_VTEX_ANTIFRAUD_OPERATIONS],
)
def test_agrees_with_vtex_antifraud_spec(
    openapi: dict[str, Any],
    vtex_antifraud_spec: dict[str, Any],
    our_path: str,
    vtex_path: str,
    method: str,
    operation_id: str,
) -> None:
    """Every property VTEX lists in the request body (POST /transactions, /pre-analysis, PUT)
    and the 200 response exists in ours, with a compatible type and the same enum, but for the
    deviations above (each a contradiction in VTEX's own documents)."""
    assert openapi["paths"][our_path][method]["operationId"] == operation_id
    vtex_operation = vtex_antifraud_spec["paths"][vtex_path][method]
    vtex_parameters = [
        p["name"]
        for p in walk.parameters(vtex_antifraud_spec, vtex_path, vtex_operation)
        if p["in"] == "path"
    ]
    our_parameters = [
        p["name"]
        for p in walk.parameters(openapi, our_path, openapi["paths"][our_path][method])
        if p["in"] == "path"
    ]
    # VTEX's `transactions.id` (or `.Id`, or `transactionId`) is our `transactionId`.
    assert len(vtex_parameters) == len(our_parameters) <= 1
    assert our_parameters == (["transactionId"] if vtex_parameters else [])
    problems = _differences_with_vtex(
        openapi,
        vtex_antifraud_spec,
        our_path,
        vtex_path,
        method,
        deviations={
            (section, prop): why
            for (operation, section, prop), why in ANTIFRAUD_DEVIATIONS.items()
            if operation == operation_id
        },
        not_compared={
            (section, prop): why
            for (operation, section, prop), why in ANTIFRAUD_NOT_COMPARED.items()
            if operation == operation_id
        },
        compare_responses=operation_id not in ANTIFRAUD_RESPONSES_NOT_COMPARED,
    )
    assert not problems, f"{len(problems)} difference(s) with VTEX's spec:\n" + "\n".join(problems)


def _required_but_undefined(schema: Any, root: dict[str, Any], prefix: str = "") -> set[str]:
    """The property paths a schema requires without defining them, nested objects included."""
    schema = _flatten(schema, root)
    found: set[str] = set()
    properties = schema.get("properties", {})
    # VTEX's `Payment` array repeats its items' `required` on the array itself: not an object's.
    for name in schema.get("required", []) if "items" not in schema else []:
        if name not in properties:
            found.add(f"{prefix}{name}")
    for name, sub in properties.items():
        found |= _required_but_undefined(sub, root, f"{prefix}{name}.")
    if "items" in schema:
        found |= _required_but_undefined(schema["items"], root, f"{prefix[:-1]}[].")
    return found


def test_vtex_antifraud_required_fields(
    openapi: dict[str, Any], vtex_antifraud_spec: dict[str, Any]
) -> None:
    """What VTEX's request schemas require is documented in ours (as a property: only `id` is
    required here, as the service reads the rest leniently), but for the names VTEX requires
    without ever defining them (`sellerId`, reference A5.1), which are excluded explicitly: if
    VTEX fixes its schema, this says so."""
    ours = _flatten(openapi["components"]["schemas"]["AntifraudAnalysisRequest"], openapi)
    assert ours["required"] == ["id"]
    for _, vtex_path, method, operation_id in SERVED_VTEX_ANTIFRAUD_OPERATIONS:
        vtex_operation = vtex_antifraud_spec["paths"][vtex_path][method]
        vtex_schema = _request_schema(vtex_antifraud_spec, vtex_operation)
        if vtex_schema is None:
            continue
        undefined = _required_but_undefined(vtex_schema, vtex_antifraud_spec)
        assert undefined <= set(VTEX_ANTIFRAUD_REQUIRED_UNDEFINED), (operation_id, undefined)
        vtex_required = set(_flatten(vtex_schema, vtex_antifraud_spec)["required"]) - undefined
        assert vtex_required <= set(ours["properties"]), operation_id
    # The exclusion names a real spec bug: POST /transactions requires `sellerId`, undefined.
    send = vtex_antifraud_spec["paths"]["/transactions"]["post"]
    assert _required_but_undefined(
        _request_schema(vtex_antifraud_spec, send), vtex_antifraud_spec
    ) == set(VTEX_ANTIFRAUD_REQUIRED_UNDEFINED)
    # It is a property of the items, where VTEX defines it, and there it is documented.
    item = _flatten(openapi["components"]["schemas"]["AntifraudItem"], openapi)
    assert "sellerId" in item["properties"]


def vtex_antifraud_request_examples(vtex_spec: dict[str, Any]) -> list[tuple[str, Any]]:
    """What VTEX documents it sends: its request examples, the bodies its property examples make
    up (not for PUT, whose schema nests `payments` in an extra array, see
    ANTIFRAUD_NOT_COMPARED), and the variants above. Also used by
    tests/antifraud/test_openapi_antifraud.py, against the service's model."""
    samples: list[tuple[str, Any]] = []
    for _, vtex_path, method, operation_id in SERVED_VTEX_ANTIFRAUD_OPERATIONS:
        operation = vtex_spec["paths"][vtex_path][method]
        body = walk.resolve(operation.get("requestBody"), vtex_spec)
        if body is None:
            continue
        media = body["content"]["application/json"]
        samples += [(f"{operation_id} {name}", value) for name, value in _media_examples(media)]
        if operation_id != "antifraudUpdateTransaction":
            assembled = _example_from_properties(media["schema"], vtex_spec)
            samples.append((f"{operation_id} property examples", assembled))
    samples += [(f"variant {n}", v) for n, v in enumerate(VTEX_ANTIFRAUD_REQUEST_VARIANTS)]
    return samples


def test_vtex_antifraud_request_examples_are_accepted(
    openapi: dict[str, Any], vtex_antifraud_spec: dict[str, Any]
) -> None:
    """Our lenient request schema accepts every order VTEX documents it sends, on every
    operation that takes one."""
    samples = vtex_antifraud_request_examples(vtex_antifraud_spec)
    assembled = dict(samples)["antifraudSendTransaction property examples"]
    # Complete enough to prove something: a card payment with its details and a cart.
    assert assembled["payments"][0]["details"]["bin"] == "507860"
    assert assembled["miniCart"]["items"][0]["sellerId"] == "vtexargentina"
    assert assembled["transactionStartDate"] == "2025-06-15T18:08:23"
    problems: list[str] = []
    checked = 0
    for our_path, _, method, operation_id in SERVED_VTEX_ANTIFRAUD_OPERATIONS:
        schema = _request_schema(openapi, openapi["paths"][our_path][method])
        if schema is None:
            continue
        for name, sample in samples:
            checked += 1
            errors = _schema_errors(schema, sample, openapi)
            problems += [f"{operation_id} [{name}] {error}" for error in errors]
    assert checked >= 3 * 6, f"only {checked} VTEX examples checked"
    assert not problems, "\n".join(problems)


def test_antifraud_examples_follow_the_protocol(openapi: dict[str, Any]) -> None:
    """The documented answers say what the service says: `received` only on POST, `undefined`
    only on reads, `score` equal to `fraudRiskPercentage`; the request examples use VTEX's
    example id (which the GET, PUT and DELETE examples read) and the test suite's."""
    paths = openapi["paths"]
    transaction = paths[_AF_TRANSACTION]
    cases = [
        (paths["/antifraud/transactions"]["post"], {"received", "approved", "denied"}),
        (transaction["get"], {"undefined", "approved", "denied"}),
        (transaction["put"], {"undefined", "approved", "denied"}),
    ]
    for operation, statuses in cases:
        media = operation["responses"]["200"]["content"]["application/json"]
        for name, example in _media_examples(media):
            assert example["status"] in statuses, (operation["operationId"], name)
            assert example["score"] == example["fraudRiskPercentage"], name
    body = openapi["components"]["requestBodies"]["AntifraudAnalysis"]["content"]
    ids = {name: example["id"] for name, example in _media_examples(body["application/json"])}
    assert ids["Vtex"] == walk.resolve(transaction["parameters"][0], openapi)["example"]
    assert re.fullmatch(r"[0-9A-F]{32}[1-6]", ids["TestSuite"]), ids


def test_rule_file_body(openapi: dict[str, Any]) -> None:
    """`PUT /admin/antifraud/merchants/{merchant}/rules` takes the rule file as a YAML or JSON
    document (described by the rule file's schema) or as text in any of its syntaxes (text/plain,
    a string); every example, parsed, is a rule file the schema accepts, and so is the
    rule file the service ships as its default. TOML travels as text/plain (the content decides,
    not the Content-Type): `application/toml` is not documented, as Schemathesis cannot send it
    and refuses a document it cannot test whole."""
    operation = openapi["paths"]["/admin/antifraud/merchants/{merchant}/rules"]["put"]
    content = operation["requestBody"]["content"]
    assert operation["requestBody"]["required"] is True
    assert sorted(content) == ["application/json", "application/yaml", "text/plain"]
    rule_file = {"$ref": "#/components/schemas/AntifraudRuleFile"}
    assert content["application/json"]["schema"] == content["application/yaml"]["schema"]
    assert content["application/json"]["schema"] == rule_file
    parsed: list[tuple[str, Any]] = []
    for media_type, media in content.items():
        examples = list(_media_examples(media))
        assert examples, f"{media_type}: an example"
        for name, example in examples:
            if media_type != "text/plain":
                parsed.append((f"{media_type} {name}", example))
                continue
            assert media["schema"]["type"] == "string"
            loaded = tomllib.loads(example) if name == "Toml" else yaml.safe_load(example)
            parsed.append((f"{media_type} {name}", loaded))
    parsed.append(("default_rules.yaml", yaml.safe_load(DEFAULT_RULES_PATH.read_text())))
    problems = [
        f"{where}: {error}"
        for where, document in parsed
        for error in _schema_errors(rule_file, document, openapi)
    ]
    assert not problems, "\n".join(problems)
    assert any(name == "text/plain Toml" for name, _ in parsed)
    # The schema is strict as the service is: unknown keys and unknown kinds are refused.
    for wrong in (
        {"thresholds": {"reveiw": 50}},
        {"rules": [{"name": "x", "kind": "magic"}]},
        {"rules": [{"name": "v", "kind": "velocity", "subject": "ip", "window": 60}]},
    ):
        assert _schema_errors(rule_file, wrong, openapi), wrong
