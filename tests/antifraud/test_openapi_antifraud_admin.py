"""The anti-fraud operator routes (``/admin/antifraud/...``) against ``openapi.yaml``, with
Schemathesis, in-process: every route is documented; examples, coverage cases and fuzzed cases
find no server error and nothing the document does not declare; the documented examples are real
calls (the review queue, an operator's decision, rule files in JSON, YAML and TOML); every
operation answers 401 without the bearer token and does nothing; values at the edges get the
documented answer, among them the ones that once broke the service.

Each test starts from an emptied database with the merchant the examples name (``mystore``),
running a rule file that sends every order to review, and an order in review with the documented
``tid`` (``EXAMPLE_TID``), so that the examples reach real rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

from connector.app import ADMIN_PREFIX, Services, create_app
from tests.antifraud.conftest import order, provider_headers
from tests.conftest import MerchantCredentials, make_settings
from tests.schemathesis_support import (
    Case,
    Operation,
    httpx_request,
    hypothesis_settings,
    operations_by_id,
    schemathesis_config,
)

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
ORIGIN = "http://testserver"
ADMIN_TAG = "Operators"
TOKEN = "admin-token-for-the-antifraud-conformance-run"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
OPERATOR = {"X-Operator": "ana"}
EXAMPLE_MERCHANT = "mystore"
EXAMPLE_TID = "4692c1f54d514fe69da0b472a3b2a770"
EXAMPLE_TRANSACTION_ID = "D3AA1FC8372E430E8236649DB5EBD08E"
# Every order goes to an operator: score 0 reaches the review threshold, nothing is denied.
EVERYTHING_TO_REVIEW = "thresholds: {review: 0, deny: 101}\n"
OPERATION_IDS = frozenset(
    {"adminListReviews", "adminShowReview", "adminDecideReview", "adminShowRules", "adminLoadRules"}
)

MAX_EXAMPLES = 10
HYPOTHESIS_SETTINGS = hypothesis_settings(MAX_EXAMPLES)

schema = (
    schemathesis.openapi.from_path(
        OPENAPI_PATH, config=schemathesis_config("all", MAX_EXAMPLES, stateful_steps=2)
    )
    # The anti-fraud ones among the operators' (tag `Operators`): include() calls add up (or).
    .include(operation_id=sorted(OPERATION_IDS))
)
_operations = operations_by_id


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} on {case.operation.label}: {response.text}")


CHECKS: list[schemathesis.CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class AdminApi:
    portal: BlockingPortal
    client: httpx.AsyncClient
    services: Services
    merchant: MerchantCredentials

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(functools.partial(function, *args))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.call(
            functools.partial(self.client.request, method, ORIGIN + path, **kwargs)
        )
        return response

    def send(self, case: Case, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send a Schemathesis case; `headers` (default: the bearer token) are added."""
        method, url, arguments = httpx_request(case, ORIGIN, BEARER if headers is None else headers)
        response: httpx.Response = self.call(
            functools.partial(self.client.request, method, url, **arguments)
        )
        return response

    def analyse(self, transaction_id: str) -> dict[str, Any]:
        """An order of the example merchant, analysed (into the review queue)."""
        answer = self.request(
            "POST", "/antifraud/transactions", json=order(transaction_id),
            headers=provider_headers(self.merchant),
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    def state(self) -> tuple[Any, ...]:
        """What a request could change: the queue, the example analysis, the rules."""
        queue = self.request("GET", "/admin/antifraud/reviews", headers=BEARER).json()
        review = self.request("GET", f"/admin/antifraud/reviews/{EXAMPLE_TID}", headers=BEARER)
        rules = self.request("GET", f"/admin/antifraud/merchants/{EXAMPLE_MERCHANT}/rules",
                             headers=BEARER)  # fmt: skip
        return (
            [item["tid"] for item in queue],
            {k: review.json()[k] for k in ("status", "decidedBy", "stoppedAt")},
            rules.json()["version"],
        )


def _start(database_url: str, **overrides: Any) -> Iterator[AdminApi]:
    app = create_app(make_settings(database_url, **overrides))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(name="antifraud-admin-conformance-app") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        services: Services = app.state.services
        issued = portal.call(services.merchants.add, EXAMPLE_MERCHANT)
        merchant = MerchantCredentials(issued.name, issued.app_key, issued.app_token)
        api = AdminApi(portal, client, services, merchant)

        async def everything_to_review() -> None:
            found = await services.merchants.by_name(EXAMPLE_MERCHANT)
            assert found is not None
            await services.antifraud.rulebook.load(found.id, EVERYTHING_TO_REVIEW, "test")

        portal.call(everything_to_review)
        with mock.patch("connector.antifraud.service.generate_public_id", lambda: EXAMPLE_TID):
            analysed = api.analyse(EXAMPLE_TRANSACTION_ID)
        assert (analysed["tid"], analysed["status"], analysed["analysisType"]) == (
            EXAMPLE_TID, "received", "manual"
        )  # fmt: skip
        yield api


@pytest.fixture
def api(anyio_backend: str, database_url: str) -> Iterator[AdminApi]:
    yield from _start(database_url, admin_token=TOKEN)


# ----------------------------------------------------------------------------- the document


def test_document_describes_every_antifraud_admin_route() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))  # the lifespan is not run
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == ADMIN_PREFIX]
    served = {
        (method, ADMIN_PREFIX + route.path)
        for route in mount.routes
        if isinstance(route, Route) and route.path.startswith("/antifraud/")
        for method in set(route.methods or ()) - {"HEAD"}
    }
    operations = _operations(schema)
    assert set(operations) == OPERATION_IDS
    assert served == {(op.method.upper(), op.path) for op in operations.values()}
    for operation in operations.values():
        assert operation.definition.raw["tags"] == [ADMIN_TAG], operation.label


# ----------------------------------------------------------------------------- stateless


@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_operation_conforms(case: Case, api: AdminApi) -> None:
    """Examples, coverage cases and fuzzed cases of one operation, with the bearer token."""
    response = api.send(case, {**BEARER, **OPERATOR})
    case.validate_response(response, checks=CHECKS)


def _path(operation: Operation) -> dict[str, str] | None:
    values = {"tid": EXAMPLE_TID, "merchant": EXAMPLE_MERCHANT}
    return {p.name: values[p.name] for p in operation.path_parameters} or None


def _examples(operation: Operation) -> list[tuple[str, Case]]:
    """One case per documented request example (one without a body for a GET)."""
    raw = operation.definition.raw
    if "requestBody" not in raw:
        query = {p.name: p.definition["example"] for p in operation.query if "example" in
                 p.definition}  # fmt: skip
        return [("no body", operation.Case(path_parameters=_path(operation), query=query or None))]
    cases = []
    for media_type, media in raw["requestBody"]["content"].items():
        examples = [("example", media["example"])] if "example" in media else []
        examples += [(name, item["value"]) for name, item in media.get("examples", {}).items()]
        cases += [
            (f"{media_type} {name}", operation.Case(path_parameters=_path(operation),
                                                    body=body, media_type=media_type))
            for name, body in examples
        ]  # fmt: skip
    return cases


def test_the_examples_are_real_calls(api: AdminApi) -> None:
    """The queue lists the example analysis; its detail shows the order; the example decision
    decides it (announced to VTEX's reads), and a second one conflicts; every example rule
    file loads, as the next version, and is what the merchant then runs."""
    operations = _operations(schema)
    statuses: dict[str, list[int]] = {}
    for operation_id in ("adminListReviews", "adminShowReview", "adminDecideReview",
                         "adminDecideReview", "adminShowRules", "adminLoadRules"):  # fmt: skip
        for name, case in _examples(operations[operation_id]):
            response = api.send(case, {**BEARER, **OPERATOR})
            case.validate_response(response, checks=CHECKS)
            statuses.setdefault(operation_id, []).append(response.status_code)
            body = response.json()
            if operation_id == "adminListReviews":
                assert [item["tid"] for item in body] == [EXAMPLE_TID], body
            elif operation_id == "adminShowReview":
                assert body["order"]["id"] == EXAMPLE_TRANSACTION_ID
                assert (body["status"], body["merchant"]) == ("undefined", EXAMPLE_MERCHANT)
            elif operation_id == "adminLoadRules" and response.status_code == 200:
                # The file is stored as sent: the text, or the serialized document.
                assert isinstance(case.body, dict) or body["source"] == case.body, name
    assert statuses == {
        "adminListReviews": [200],
        "adminShowReview": [200],
        "adminDecideReview": [200, 409],
        "adminShowRules": [200],
        "adminLoadRules": [200, 200, 200, 200],
    }
    read = api.request("GET", f"/antifraud/transactions/{EXAMPLE_TRANSACTION_ID}",
                       headers=provider_headers(api.merchant)).json()  # fmt: skip
    assert (read["status"], read["code"], read["message"]) == ("denied", "manual-review",
                                                               "denied by ana")  # fmt: skip
    rules = api.request("GET", f"/admin/antifraud/merchants/{EXAMPLE_MERCHANT}/rules",
                        headers=BEARER).json()  # fmt: skip
    # The shipped fixture loaded version 1; the four examples 2 to 5, the TOML one last.
    assert (rules["version"], rules["loadedBy"], rules["rules"]) == (5, "ana", ["large-order"])
    assert rules["thresholds"] == {"review": 40, "deny": 70}


# ----------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}],
    ids=["none", "wrong", "no scheme", "basic"],
)
def test_every_operation_needs_the_token(api: AdminApi, headers: dict[str, str]) -> None:
    before = api.state()
    for operation_id, operation in _operations(schema).items():
        for name, case in _examples(operation):
            response = api.send(case, headers)
            assert response.status_code == 401, (operation_id, name, response.text)
            assert response.json()["code"] == "invalid-admin-token"
            case.validate_response(response, checks=CHECKS)
    assert api.state() == before


@pytest.fixture
def api_without_token(anyio_backend: str, database_url: str) -> Iterator[AdminApi]:
    yield from _start(database_url)


def test_the_admin_api_is_off_without_a_token(api_without_token: AdminApi) -> None:
    for operation_id, operation in _operations(schema).items():
        for _, case in _examples(operation):
            response = api_without_token.send(case, BEARER)
            assert response.status_code == 401, (operation_id, response.text)
            assert response.json()["code"] == "admin-api-disabled"
            case.validate_response(response, checks=CHECKS)


# ----------------------------------------------------------------------------- edge values

_RULES = f"/admin/antifraud/merchants/{EXAMPLE_MERCHANT}/rules"
_DECISION = f"/admin/antifraud/reviews/{EXAMPLE_TID}/decision"
# (name, method, path, keyword arguments of the request, status, code).
EDGES: list[tuple[str, str, str, dict[str, Any], int, str | None]] = [
    ("limit 0", "GET", "/admin/antifraud/reviews?limit=0", {}, 400, "invalid-query"),
    ("limit 1001", "GET", "/admin/antifraud/reviews?limit=1001", {}, 400, "invalid-query"),
    ("limit -1", "GET", "/admin/antifraud/reviews?limit=-1", {}, 400, "invalid-query"),
    ("limit 1000", "GET", "/admin/antifraud/reviews?limit=1000", {}, 200, None),
    ("an unknown merchant's queue", "GET", "/admin/antifraud/reviews?merchant=nope", {}, 404,
     "merchant-not-found"),
    ("an empty merchant: every merchant's", "GET", "/admin/antifraud/reviews?merchant=", {}, 200,
     None),
    ("an unknown tid", "GET", "/admin/antifraud/reviews/nope", {}, 404, "analysis-not-found"),
    ("a tid of 201 characters", "GET", "/admin/antifraud/reviews/" + "t" * 201, {}, 400,
     "invalid-path"),
    ("a decision on an unknown tid", "POST", "/admin/antifraud/reviews/nope/decision",
     {"json": {"decision": "approved", "reason": "ok"}}, 404, "analysis-not-found"),
    ("an unknown decision", "POST", _DECISION, {"json": {"decision": "review", "reason": "x"}},
     400, "invalid-request"),
    ("a decision without a reason", "POST", _DECISION, {"json": {"decision": "approved"}}, 400,
     "invalid-request"),
    ("a reason of 501 characters", "POST", _DECISION,
     {"json": {"decision": "approved", "reason": "r" * 501}}, 400, "invalid-request"),
    ("an unknown field in a decision", "POST", _DECISION,
     {"json": {"decision": "approved", "reason": "x", "by": "me"}}, 400, "invalid-request"),
    ("a decision that is not JSON", "POST", _DECISION, {"content": b"approve!"}, 400,
     "invalid-json"),
    ("a decision over the body limit", "POST", _DECISION, {"content": b" " * 1_048_577}, 413,
     "payload-too-large"),
    ("an unknown merchant's rules", "GET", "/admin/antifraud/merchants/nope/rules", {}, 404,
     "merchant-not-found"),
    ("rules for an unknown merchant", "PUT", "/admin/antifraud/merchants/nope/rules",
     {"content": EVERYTHING_TO_REVIEW}, 404, "merchant-not-found"),
    ("rules that do not parse", "PUT", _RULES, {"content": "rules: [\n"}, 400, "invalid-rules"),
    ("rules that are not a mapping", "PUT", _RULES, {"content": "- a\n- b\n"}, 400,
     "invalid-rules"),
    ("an empty rule file", "PUT", _RULES, {"content": b""}, 400, "invalid-rules"),
    ("rules that are not UTF-8", "PUT", _RULES, {"content": b"\xff\xfe"}, 400, "invalid-rules"),
    ("rules with NUL", "PUT", _RULES, {"content": b"version: 1\x00"}, 400, "invalid-rules"),
    ("an unknown key", "PUT", _RULES, {"content": "thresholds: {reveiw: 10}"}, 400,
     "invalid-rules"),
    ("review above deny", "PUT", _RULES, {"content": "thresholds: {review: 90, deny: 80}"}, 400,
     "invalid-rules"),
    ("a deadline beyond 5 days", "PUT", _RULES, {"content": "review: {deadline: 6d}"}, 400,
     "invalid-rules"),
    ("duplicate rule names", "PUT", _RULES,
     {"content": "rules: [{name: a, kind: address_mismatch}, {name: a, kind: address_mismatch}]"},
     400, "invalid-rules"),
    ("a velocity rule without a limit", "PUT", _RULES,
     {"content": "rules: [{name: v, kind: velocity, subject: ip, window: 1h}]"}, 400,
     "invalid-rules"),
    ("rules over the body limit", "PUT", _RULES, {"content": b"#" * 1_048_577}, 413,
     "payload-too-large"),
    ("rules as compact JSON", "PUT", _RULES,
     {"json": {"thresholds": {"review": 10, "deny": 20}}}, 200, None),
    ("TOML sent as application/toml", "PUT", _RULES,
     {"content": "[thresholds]\nreview = 30\n", "headers": {"Content-Type": "application/toml"}},
     200, None),
]  # fmt: skip


def test_edge_values_conform(api: AdminApi) -> None:
    operations = {(op.method.upper(), op.path): op for op in _operations(schema).values()}
    problems = []
    for name, method, path, kwargs, status, code in EDGES:
        arguments = dict(kwargs)  # the table is shared by both databases' runs
        headers = {**BEARER, **arguments.pop("headers", {})}
        response = api.request(method, path, headers=headers, **arguments)
        if response.status_code != status or (code and response.json().get("code") != code):
            problems.append(f"{name}: {response.status_code} {response.text[:200]}")
            continue
        # The answer agrees with the document (status, content type, body).
        template = next(
            (op for (m, p), op in operations.items() if m == method and _matches(p, path)), None
        )
        assert template is not None, path
        template.Case(path_parameters=_path(template)).validate_response(response, checks=CHECKS)
    assert not problems, "\n".join(problems)


def _matches(template: str, path: str) -> bool:
    parts, wanted = template.split("/"), path.split("?")[0].split("/")
    return len(parts) == len(wanted) and all(
        t == w or t.startswith("{") for t, w in zip(parts, wanted, strict=True)
    )


# Values that once broke the service (a 500 where the document says 400): Unicode digits that
# `str.isdigit` accepts and `int` refuses, rule files nested beyond the parsers' stack, and a NUL
# that PostgreSQL refuses in a query (now all checked in `connector.http` and the rules parser).
BREAKS: list[Any] = [
    pytest.param(
        "GET", "/admin/antifraud/reviews?limit=%C2%B2", {},
        id="limit of a superscript two",
    ),
    pytest.param(
        "PUT", _RULES, {"content": "a: " + "[" * 2000 + "]" * 2000},
        id="deeply nested YAML rules",
    ),
    pytest.param(
        "PUT", _RULES, {"content": "a = " + "[" * 2000 + "]" * 2000},
        id="deeply nested TOML rules",
    ),
    pytest.param(
        "GET", "/admin/antifraud/reviews?merchant=%00", {},
        id="NUL in the merchant query",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kwargs"), BREAKS)
def test_values_that_once_broke_the_service(
    api: AdminApi,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    response = api.request(method, path, headers=BEARER, **kwargs)
    assert response.status_code in (400, 404), response.text
