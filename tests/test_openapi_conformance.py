"""The service against ``openapi.yaml``, with Schemathesis, in-process.

``test_openapi_document.py`` checks the document on its own (valid OpenAPI, agrees with VTEX's
spec). This module checks the service against it:

* the app serves the very document the file holds, and the document describes every Payment
  Provider route;
* Schemathesis cases (explicit examples, coverage cases, positive and negative fuzzing) for every
  operation find no server error and no status, content type or body the document does not
  declare;
* a stateful run follows the document's links (``createPayment`` -> settle/refund/cancel,
  ``settlePayment`` -> refund) under the same checks;
* every authenticated operation answers ``401`` with the documented ``Error`` body, and does
  nothing, when the credentials are missing or wrong;
* values a database cannot hold (amounts beyond int64 minor units, NUL characters, oversize
  strings), which fuzzing found as 500s, get a documented answer.

The document also describes the Gift Card Provider Protocol, under another base path
(``/giftcard``, a path-level ``servers`` entry): its operations are left out of every run here and
checked the same way by ``tests/giftcards/test_openapi_giftcards.py``.

Everything runs on SQLite and on PostgreSQL (see ``conftest.py``). The app is driven in-process:
one event loop thread per test (an anyio blocking portal) runs the app's lifespan once and serves
every request through one ``httpx.AsyncClient`` on an ``httpx.ASGITransport``; Schemathesis only
generates the requests (``Case.as_transport_kwargs``) and judges the responses
(``Case.validate_response``). Generation is derandomized and bounded, so a run is reproducible.

Not enabled on purpose: ``positive_data_acceptance`` (the document is lenient by design and the
service legitimately answers ``400`` to schema-valid bodies, e.g. a ``value`` of 0 for a
settlement or more decimals than the currency has) and ``negative_data_rejection`` (the service
ignores what it does not need, e.g. an ``X-VTEX-API-Is-TestSuite`` other than ``true`` or a
``null`` optional field, and accepts JSON whatever the ``Content-Type``). Both would report the
documented leniency as failures.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import yaml
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import Phase, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

from connector.app import PAYMENT_PROVIDER_PREFIX, create_app
from tests import payloads
from tests.conftest import MerchantCredentials, make_settings
from tests.schemathesis_support import (
    Case,
    Operation,
    httpx_request,
    hypothesis_settings,
    operations_by_id,
    schemathesis_config,
)
from tests.schemathesis_support import operation_id as _operation_id

OPENAPI_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
ORIGIN = "http://testserver"
BASE_URL = ORIGIN + PAYMENT_PROVIDER_PREFIX

# The paymentId of every example in openapi.yaml; each test creates (and approves) this payment
# first, so the examples and part of the fuzzed settle/refund/cancel calls reach a real payment.
EXAMPLE_PAYMENT_ID = "8A1F3C5E7B9D4F2A6C8E0B1D3F5A7C9E"
EXAMPLE_PAYMENT_VALUE = 31.9

# The documented transient answers: 500 with the operation's own body shape, retried by VTEX.
OPERATIONS_WITH_TRANSIENT_500 = frozenset(
    {"settlePayment", "refundPayment", "cancelPayment", "cancelPaymentAlias"}
)
TRANSIENT_CODES = frozenset(
    {
        "authorization-in-progress",
        "operation-in-progress",
        "acquirer-unavailable",
        "acquirer-timeout",
    }
)
UNAUTHORIZED_CODES = frozenset({"missing-credentials", "unauthorized"})

MAX_EXAMPLES = 25
HYPOTHESIS_SETTINGS = hypothesis_settings(MAX_EXAMPLES)
STATEFUL_SETTINGS = settings(
    HYPOTHESIS_SETTINGS,
    stateful_step_count=6,
    phases=[Phase.generate, Phase.shrink],
)


def _config(mode: str) -> schemathesis.Config:
    return schemathesis_config(mode, MAX_EXAMPLES, stateful_steps=6)


# The gift card operations (under /giftcard) and the admin API (under /admin) have their own
# modules: tests/giftcards/test_openapi_giftcards.py and test_openapi_admin.py.
PAYMENT_TAG = "Payment Flow"

# The whole document, both protocols: what the app serves.
document_schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=_config("all"))
# The Payment Provider Protocol's operations, the subject of this module.
schema = document_schema.include(tag=PAYMENT_TAG)
# A separate instance for the stateful run: positive data only (a link is followed from a 200),
# and its own hooks.
stateful_schema = schemathesis.openapi.from_path(OPENAPI_PATH, config=_config("positive")).include(
    tag=PAYMENT_TAG
)


# ----------------------------------------------------------------------------- generation hooks


def _retarget(case: Case, to_example_payment: bool) -> Case:
    if not to_example_payment:
        return case
    case.path_parameters = {**case.path_parameters, "paymentId": EXAMPLE_PAYMENT_ID}
    if isinstance(case.body, dict) and isinstance(case.body.get("paymentId"), str):
        case.body = {**case.body, "paymentId": EXAMPLE_PAYMENT_ID}
    return case


@schema.hook("flatmap_case")
def _half_on_the_example_payment(
    context: schemathesis.HookContext, case: Case
) -> st.SearchStrategy[Case]:
    """Send about half of the fuzzed settle/refund/cancel calls to the existing payment.

    A random paymentId only ever reaches the 404 branch; the existing (approved) payment makes
    the generated amounts and requestIds go through the settlement/refund/cancellation logic.
    """
    if "paymentId" not in case.path_parameters:
        return st.just(case)
    return st.booleans().map(functools.partial(_retarget, case))


# ----------------------------------------------------------------------------- checks


def no_undocumented_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """No 5xx, except the documented transient 500 of settle/refund/cancel.

    Those answer 500 with the operation's own body and one of the documented transient codes
    (VTEX retries them); their shape is checked by `response_schema_conformance`.
    """
    if response.status_code < 500:
        return
    operation_id = case.operation.definition.raw.get("operationId")
    if response.status_code == 500 and operation_id in OPERATIONS_WITH_TRANSIENT_500:
        try:
            code = response.json().get("code")
        except (ValueError, AttributeError):
            code = None
        if code in TRANSIENT_CODES:
            return
    raise AssertionError(
        f"Server error {response.status_code} on {case.operation.label}: {response.text[:500]}"
    )


CHECKS: list[schemathesis.CheckFunction] = [
    no_undocumented_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# ----------------------------------------------------------------------------- the app


@dataclass
class InProcessApi:
    """The app, its lifespan entered once, behind one client; callable from synchronous code."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    merchant: MerchantCredentials
    # (operationId, status, body code) of every generated request sent, for coverage asserts.
    seen: set[tuple[str, int, str | None]] = field(default_factory=set)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call: Callable[[], Any] = functools.partial(self.client.request, method, url, **kwargs)
        response: httpx.Response = self.portal.call(call)
        return response

    def send(self, case: Case, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a Schemathesis case; `headers` (default: the merchant's credentials) are added."""
        extra = self.merchant.headers if headers is None else headers
        method, url, arguments = httpx_request(case, BASE_URL, extra)
        response = self.request(method, url, **arguments)
        self._record(case, response)
        return response

    def _record(self, case: Case, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        operation_id = str(case.operation.definition.raw.get("operationId"))
        self.seen.add((operation_id, response.status_code, code))


@pytest.fixture
def api(anyio_backend: str, database_url: str) -> Iterator[InProcessApi]:
    """A fresh app on the test's (emptied) database, a merchant, and the example payment.

    `anyio_backend` makes anyio's plugin run the async `database_url` fixture for this sync test.
    """
    app = create_app(make_settings(database_url))
    # raise_app_exceptions=False: an unhandled exception must come back as the app's 500, which
    # the checks then report (the traceback is in the captured log).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(name="conformance-app") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        issued = portal.call(app.state.services.merchants.add, "acme")
        merchant = MerchantCredentials(issued.name, issued.app_key, issued.app_token)
        in_process = InProcessApi(portal, client, merchant)
        created = in_process.request(
            "POST",
            BASE_URL + "/payments",
            headers=merchant.headers,
            json=payloads.create_payment(paymentId=EXAMPLE_PAYMENT_ID, value=EXAMPLE_PAYMENT_VALUE),
        )
        assert created.status_code == 200, created.text
        assert created.json()["status"] == "approved", created.text
        yield in_process


# ----------------------------------------------------------------------------- the document


_operations = operations_by_id


def _is_authenticated(operation: Operation) -> bool:
    raw = operation.definition.raw
    requirements = raw.get("security", schema.raw_schema.get("security", []))
    return bool(requirements) and {} not in requirements


def test_document_loads_and_the_app_serves_it(api: InProcessApi) -> None:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert document_schema.raw_schema == schema.raw_schema == document

    served = api.request("GET", ORIGIN + "/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    assert served.json() == document

    served_yaml = api.request("GET", ORIGIN + "/openapi.yaml")
    assert served_yaml.status_code == 200
    assert yaml.safe_load(served_yaml.text) == document

    # What Schemathesis reads from the served document is what it reads from the file.
    from_app = schemathesis.openapi.from_dict(served.json(), config=_config("all"))
    assert sorted(_operations(from_app)) == sorted(_operations(document_schema))
    # This module's runs cover the Payment Provider Protocol only, all of it.
    payment_operations = {
        operation_id
        for operation_id, operation in _operations(document_schema).items()
        if operation.definition.raw.get("tags") == [PAYMENT_TAG]
    }
    assert sorted(_operations(schema)) == sorted(payment_operations)
    assert sorted(_operations(stateful_schema)) == sorted(payment_operations)


def test_document_describes_every_route() -> None:
    """The Payment Provider routes and the documented operations are the same set (the gift card
    routes: ``tests/giftcards/test_openapi_giftcards.py``)."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))  # the lifespan is not run
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == PAYMENT_PROVIDER_PREFIX]
    served = {
        (method, route.path.replace("{payment_id}", "{paymentId}"))
        for route in mount.routes
        if isinstance(route, Route)
        for method in set(route.methods or ()) - {"HEAD"}
    }
    documented = {
        (operation.method.upper(), operation.path) for operation in _operations(schema).values()
    }
    assert served == documented
    assert schema.declared_base_path().rstrip("/") == PAYMENT_PROVIDER_PREFIX
    # No payment path overrides the global server.
    for operation in _operations(schema).values():
        assert operation.base_url.rstrip("/").endswith(PAYMENT_PROVIDER_PREFIX), operation.label


# ----------------------------------------------------------------------------- stateless


@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_operation_conforms(case: Case, api: InProcessApi) -> None:
    """Examples, coverage cases and fuzzed cases of one operation, with valid credentials."""
    response = api.send(case)
    case.validate_response(response, checks=CHECKS)


# ----------------------------------------------------------------------------- stateful


def _realistic_operation_body(body: Any, realistic: bool) -> Any:
    if not realistic or not isinstance(body, dict):
        return body
    # The path's paymentId is authoritative; a generated one in the body only means 400.
    realistic_body = {**body, "paymentId": None}
    if "value" in realistic_body:
        realistic_body["value"] = 1.0
    return realistic_body


@stateful_schema.hook("flatmap_body")
def _sometimes_a_realistic_amount(
    context: schemathesis.HookContext, body: Any
) -> st.SearchStrategy[Any]:
    """Let the stateful run reach successful settlements and refunds, not only refusals/400s."""
    if context.operation is None or "paymentId" not in {
        p.name for p in context.operation.path_parameters
    }:
        return st.just(body)
    return st.booleans().map(functools.partial(_realistic_operation_body, body))


def test_stateful_links(api: InProcessApi) -> None:
    """createPayment -> settle/refund/cancel and settle -> refund, following the OpenAPI links."""

    class PaymentFlows(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            case.headers.update(api.merchant.headers)

        def call(self, case: Case, **kwargs: Any) -> schemathesis.Response:
            return schemathesis.Response.from_any(api.send(case, headers={}))

        def validate_response(
            self,
            response: schemathesis.Response,
            case: Case,
            additional_checks: list[schemathesis.CheckFunction] | None = None,
            **kwargs: Any,
        ) -> None:
            case.validate_response(response, checks=CHECKS, recorder=self.recorder)

    PaymentFlows.run(settings=STATEFUL_SETTINGS)

    # The run must have gone through the links, not only through createPayment.
    reached = {(operation, status) for operation, status, _ in api.seen}
    for operation in ("settlePayment", "refundPayment", "cancelPayment"):
        assert any(op == operation for op, _ in reached), f"{operation} never called: {reached}"
    assert ("settlePayment", 200) in reached, reached


# ----------------------------------------------------------------------------- authentication

WRONG_CREDENTIALS: dict[str, Callable[[MerchantCredentials], dict[str, str]]] = {
    "none": lambda merchant: {},
    "empty": lambda merchant: {"X-VTEX-API-AppKey": "", "X-VTEX-API-AppToken": ""},
    "unknown key": lambda merchant: {
        "X-VTEX-API-AppKey": "vtexappkey-unknown",
        "X-VTEX-API-AppToken": merchant.app_token,
    },
    "wrong token": lambda merchant: {
        "X-VTEX-API-AppKey": merchant.app_key,
        "X-VTEX-API-AppToken": merchant.app_token + "x",
    },
    "key only": lambda merchant: {"X-VTEX-API-AppKey": merchant.app_key},
    "token only": lambda merchant: {"X-VTEX-API-AppToken": merchant.app_token},
    "provider headers, wrong token": lambda merchant: {
        "X-PROVIDER-API-AppKey": merchant.app_key,
        "X-PROVIDER-API-AppToken": "wrong",
    },
    "test suite, empty credentials": lambda merchant: {
        "X-VTEX-API-AppKey": "",
        "X-VTEX-API-AppToken": "",
        **payloads.TEST_SUITE,
    },
}


def _authenticated_request(operation: Operation, payment_id: str) -> Any:
    """A request the operation would accept with valid credentials."""
    bodies: dict[str, Callable[[], dict[str, Any]]] = {
        "createPayment": lambda: payloads.create_payment(paymentId=payment_id),
        "settlePayment": lambda: payloads.settlement(EXAMPLE_PAYMENT_ID, 1.0),
        "refundPayment": lambda: payloads.refund(EXAMPLE_PAYMENT_ID, 1.0),
        "cancelPayment": lambda: payloads.cancellation(EXAMPLE_PAYMENT_ID),
        "cancelPaymentAlias": lambda: payloads.cancellation(EXAMPLE_PAYMENT_ID),
        "inboundRequest": lambda: {"requestId": "r", "requestData": {"body": "{}"}},
        "inboundRequestAlias": lambda: {"requestId": "r", "requestData": {"body": "{}"}},
    }
    path_parameters: dict[str, str] | None = None
    if operation.path_parameters:
        path_parameters = {"paymentId": EXAMPLE_PAYMENT_ID}
        if "inbound" in _operation_id(operation):
            path_parameters["action"] = "status"
    return operation.Case(
        path_parameters=path_parameters,
        body=bodies[_operation_id(operation)](),
        media_type="application/json",
    )


def test_unauthenticated_requests_answer_401(api: InProcessApi) -> None:
    authenticated = [op for op in _operations(schema).values() if _is_authenticated(op)]
    assert {_operation_id(op) for op in authenticated} == {
        "createPayment",
        "settlePayment",
        "refundPayment",
        "cancelPayment",
        "cancelPaymentAlias",
        "inboundRequest",
        "inboundRequestAlias",
    }
    new_payment_id = uuid.uuid4().hex.upper()
    for operation in authenticated:
        case = _authenticated_request(operation, new_payment_id)
        for name, credentials in WRONG_CREDENTIALS.items():
            response = api.send(case, headers=credentials(api.merchant))
            assert response.status_code == 401, (operation.label, name, response.text)
            case.validate_response(response, checks=CHECKS)
            assert response.json()["code"] in UNAUTHORIZED_CODES, (operation.label, name)

    # None of those requests had an effect: the payment was not created, and the example payment
    # is neither cancelled nor settled (it settles in full now) nor refunded (idem).
    def authorized(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = api.request(method, BASE_URL + path, headers=api.merchant.headers, json=body)
        assert answer.status_code in (200, 404), answer.text
        result: dict[str, Any] = answer.json()
        return result

    assert (
        authorized(
            "POST",
            f"/payments/{new_payment_id}/settlements",
            payloads.settlement(new_payment_id, 1.0),
        )["code"]
        == "payment-not-found"
    )
    settled = authorized(
        "POST",
        f"/payments/{EXAMPLE_PAYMENT_ID}/settlements",
        payloads.settlement(EXAMPLE_PAYMENT_ID, EXAMPLE_PAYMENT_VALUE),
    )
    assert settled["settleId"] is not None and settled["value"] == EXAMPLE_PAYMENT_VALUE, settled
    refunded = authorized(
        "POST",
        f"/payments/{EXAMPLE_PAYMENT_ID}/refunds",
        payloads.refund(EXAMPLE_PAYMENT_ID, EXAMPLE_PAYMENT_VALUE),
    )
    assert refunded["refundId"] is not None and refunded["value"] == EXAMPLE_PAYMENT_VALUE, refunded


def test_provider_headers_are_accepted(api: InProcessApi) -> None:
    """The positive control of the 401 test: the alternative security requirement works."""
    operation = _operations(schema)["settlePayment"]
    case = _authenticated_request(operation, EXAMPLE_PAYMENT_ID)
    headers = {
        "x-provider-api-appkey": api.merchant.app_key,
        "X-PROVIDER-API-APPTOKEN": api.merchant.app_token,
    }
    response = api.send(case, headers=headers)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 200, response.text
    assert response.json()["settleId"] is not None, response.text
    assert response.json()["value"] == 1.0, response.text


# ----------------------------------------------------------------------------- boundary values

# What fuzzing found before the service refused it with 400 (commit c997104): each of these used
# to answer 500 `internal-error` (SQLite: "Python int too large to convert to SQLite INTEGER";
# PostgreSQL: "value out of int64 range", "invalid byte sequence for encoding UTF8: 0x00",
# VARCHAR/INTEGER overflows). Fuzzing reaches them only with some seeds, so they are pinned here.
TOO_LONG = "x" * 201
BOUNDARY_VALUES: list[tuple[str, str, dict[str, Any], str | None]] = [
    ("createPayment", "value beyond int64 minor units", {"value": 1e17}, None),
    ("createPayment", "value 1e300", {"value": 1e300}, None),
    # A decimal string beyond any decimal context: decimal.Overflow, or seconds of CPU to build
    # the integer, before amounts were checked for their digits first.
    ("createPayment", "value 1e10000000 as a string", {"value": "1e10000000"}, None),
    ("createPayment", "value 1e999997 as a string", {"value": "1e999997"}, None),
    ("createPayment", "installments beyond int32", {"installments": 2**31}, None),
    ("createPayment", "NUL in paymentId", {"paymentId": "A\x00B"}, None),
    ("createPayment", "NUL in orderId", {"orderId": "\x00"}, None),
    ("createPayment", "NUL in callbackUrl", {"callbackUrl": "https://a.example/\x00"}, None),
    ("createPayment", "paymentId of 201 characters", {"paymentId": TOO_LONG}, None),
    ("createPayment", "orderId of 201 characters", {"orderId": TOO_LONG}, None),
    ("createPayment", "transactionId of 201 characters", {"transactionId": TOO_LONG}, None),
    ("createPayment", "reference of 201 characters", {"reference": TOO_LONG}, None),
    ("createPayment", "paymentMethod of 101 characters", {"paymentMethod": "x" * 101}, None),
    ("createPayment", "card number of 300 digits", {"card": {"number": "4" * 300}}, None),
    ("settlePayment", "value beyond int64 minor units", {"value": 1e17}, None),
    ("settlePayment", "value 1e300", {"value": 1e300}, None),
    ("settlePayment", "value 1e10000000 as a string", {"value": "1e10000000"}, None),
    ("settlePayment", "NUL in requestId", {"requestId": "\x00"}, None),
    ("settlePayment", "requestId of 201 characters", {"requestId": TOO_LONG}, None),
    ("settlePayment", "NUL in the path's paymentId", {"paymentId": None}, "A\x00B"),
    ("settlePayment", "path paymentId of 201 characters", {"paymentId": None}, TOO_LONG),
    ("refundPayment", "value beyond int64 minor units", {"value": 1e17}, None),
    ("refundPayment", "NUL in requestId", {"requestId": "\x00"}, None),
    ("refundPayment", "NUL in the path's paymentId", {"paymentId": None}, "A\x00B"),
    ("cancelPayment", "NUL in requestId", {"requestId": "\x00"}, None),
    ("cancelPayment", "value beyond int64 minor units", {"value": 1e17}, None),
    ("cancelPayment", "NUL in the path's paymentId", {"paymentId": None}, "A\x00B"),
]


@pytest.mark.parametrize(
    ("operation_id", "overrides", "path_payment_id"),
    [
        pytest.param(op, overrides, path, id=f"{op}: {name}")
        for op, name, overrides, path in BOUNDARY_VALUES
    ],
)
def test_boundary_values_conform(
    api: InProcessApi, operation_id: str, overrides: dict[str, Any], path_payment_id: str | None
) -> None:
    """Values a database cannot hold get a documented answer (400), never a 5xx."""
    operation = _operations(schema)[operation_id]
    case = _authenticated_request(operation, uuid.uuid4().hex.upper())
    case.body = {**case.body, **overrides}
    if path_payment_id is not None:
        case.path_parameters = {"paymentId": path_payment_id}
    response = api.send(case)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code < 500, response.text
