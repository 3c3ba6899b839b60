"""The Gift Card Provider Protocol routes against ``openapi.yaml``, with Schemathesis, in-process.

``tests/test_openapi_document.py`` checks the document on its own (valid OpenAPI, agrees with
VTEX's ``giftcard-provider-protocol.json``); ``tests/test_openapi_conformance.py`` checks the
Payment Provider Protocol's operations against the service. This module does the same for the
gift card operations, which the document serves under ``/giftcard`` (a path-level ``servers``):

* the document describes every gift card route, and its request schemas require what the
  service's models require and describe every field they read;
* Schemathesis cases (explicit examples, coverage cases, positive and negative fuzzing) for every
  operation find no server error and no status, header, content type or body the document does
  not declare; ``REST-Content-Range`` agrees with the page answered; the ledger stays consistent;
* a stateful run follows the document's links (``createGiftCardTransaction`` -> settle, cancel
  and their lists, ``settleGiftCardTransaction`` -> cancel, ``createGiftCard`` -> get, load);
* every operation answers ``401`` (credentials missing) and ``403`` (wrong), with an empty body,
  and does nothing;
* every documented link, evaluated on a real answer, leads to a 200;
* values at the edges get the documented answer (``test_boundary_values_conform``), and the values
  that once broke the service keep their answer (``test_values_that_once_broke_the_service``).

Every test starts from an emptied database with one merchant, the documented example card
(``EXAMPLE_CARD_ID``, issued with 100.00 BRL and the documented token and code) and the
documented example Debit on it (``EXAMPLE_TRANSACTION_ID``, 31.90 held), so that the document's
examples, and about half of the generated requests (hooks below), reach a real card and a real
transaction. The app is driven as in ``test_openapi_conformance.py``: an anyio blocking portal
runs its lifespan once per test, an ``httpx.AsyncClient`` on an ``httpx.ASGITransport`` serves
the requests, Schemathesis only generates them (``Case.as_transport_kwargs``) and judges the
answers (``Case.validate_response``). Generation is derandomized and bounded.

``positive_data_acceptance`` and ``negative_data_rejection`` are off for the same reasons as in
``test_openapi_conformance.py``: the service answers 400/404/422 to schema-valid requests (an
unknown card, a value with too many decimals, more than the balance) and accepts what it ignores.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import Phase, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

from connector.app import GIFTCARD_PREFIX, Services, create_app
from connector.giftcards.cards import IssueOrder
from protocol.giftcards import (
    CreateCardRequest,
    CreateTransactionRequest,
    OperationRequest,
    SearchRequest,
)
from tests import schemathesis_support
from tests.conftest import MerchantCredentials, make_settings
from tests.schemathesis_support import (
    Case,
    Operation,
    hypothesis_settings,
    operations_by_id,
    tagged_schemas,
)
from tests.schemathesis_support import operation_id as _operation_id

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
ORIGIN = "http://testserver"
BASE_URL = ORIGIN + GIFTCARD_PREFIX
GIFTCARD_TAG = "Gift Card Provider Protocol"
VENDOR_JSON = "application/vnd.vtex.giftcards.v1+json"

# The ids, token and code of the document's examples. Each test issues this card and makes this
# Debit (the document's createGiftCardTransaction example, which therefore replays it).
EXAMPLE_CARD_ID = "3b1abc17988e4a148b7f31fc6a5b955c"
EXAMPLE_REDEMPTION_TOKEN = "32ScL57220Vapb8pc50HJ3mWH1cl1L8x"
EXAMPLE_REDEMPTION_CODE = "BAHD-ASDB-ADQW-ASDQ"
EXAMPLE_TRANSACTION_ID = "68347b311ce5407c90fa5316975d047a"
EXAMPLE_CARD_BALANCE = Decimal("100.00")
EXAMPLE_DEBIT: dict[str, Any] = {
    "operation": "Debit",
    "value": 31.9,
    "description": "GiftCardHub",
    "redemptionToken": EXAMPLE_REDEMPTION_TOKEN,
    "redemptionCode": "***********ASDQ",
    "requestId": "B56CBE231DEE4E1A859183C1030CE926",
    "orderInfo": {"orderId": "v5006128str", "sequence": 5006128},
}
OPERATION_IDS = frozenset(
    {
        "searchGiftCards",
        "createGiftCard",
        "getGiftCard",
        "listGiftCardTransactions",
        "createGiftCardTransaction",
        "getGiftCardTransaction",
        "getGiftCardTransactionAuthorization",
        "listGiftCardSettlements",
        "settleGiftCardTransaction",
        "listGiftCardCancellations",
        "cancelGiftCardTransaction",
    }
)
PAGED_OPERATIONS = frozenset({"searchGiftCards", "listGiftCardTransactions"})

MAX_EXAMPLES = 15
HYPOTHESIS_SETTINGS = hypothesis_settings(MAX_EXAMPLES)
# The derandomized walk still depends on what ran before it in the session (30 scenarios reached
# every operation alone, but not after tests/acquirers); 120 reach them either way.
# test_every_link_leads_to_a_200 checks each link deterministically.
STATEFUL_SETTINGS = settings(
    HYPOTHESIS_SETTINGS,
    max_examples=120,
    stateful_step_count=8,
    phases=[Phase.generate, Phase.shrink],
)


# Only the gift card operations: the payment ones are test_openapi_conformance.py's.
schema, stateful_schema = tagged_schemas(OPENAPI_PATH, GIFTCARD_TAG, MAX_EXAMPLES, stateful_steps=8)


# ----------------------------------------------------------------------------- generation hooks


def _is_transaction_request(case: Case) -> bool:
    return case.operation.method.lower() == "post" and case.operation.path.endswith("/transactions")


def _is_operation_request(case: Case) -> bool:
    return case.operation.method.lower() == "post" and case.operation.path.endswith(
        ("/settlements", "/cancellations")
    )


def _retarget(case: Case, choices: tuple[bool, bool, bool]) -> Case:
    """Point the case at the example card (and its Debit), with a usable body, as `choices` say.

    Without this, a random `giftCardId` only ever reaches the 404 branch.
    """
    on_card, on_transaction, realistic = choices
    parameters = dict(case.path_parameters or {})
    if on_card:
        parameters["giftCardId"] = EXAMPLE_CARD_ID
        if on_transaction and "transactionId" in parameters:
            parameters["transactionId"] = EXAMPLE_TRANSACTION_ID
    case.path_parameters = parameters
    if realistic and isinstance(case.body, dict):
        if _is_transaction_request(case):
            case.body = {**case.body, "value": 0.5, "redemptionToken": EXAMPLE_REDEMPTION_TOKEN}
        elif _is_operation_request(case):
            case.body = {**case.body, "value": 0.01}
    return case


@schema.hook("flatmap_case")
def _half_on_the_example_card(
    context: schemathesis.HookContext, case: Case
) -> st.SearchStrategy[Case]:
    if "giftCardId" not in (case.path_parameters or {}):
        return st.just(case)
    choices = st.tuples(st.booleans(), st.booleans(), st.booleans())
    return choices.map(functools.partial(_retarget, case))


@stateful_schema.hook("flatmap_path_parameters")
def _stateful_on_the_example_card(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    """The stateful run's roots (a transaction, a settlement...) start on the example card; a link
    then supplies the transaction it created."""
    if not path_parameters or "giftCardId" not in path_parameters:
        return st.just(path_parameters)
    return st.booleans().map(
        lambda on_card: (
            {**path_parameters, "giftCardId": EXAMPLE_CARD_ID} if on_card else path_parameters
        )
    )


def _realistic_body(context: schemathesis.HookContext, body: Any, kind: str) -> Any:
    if kind == "as generated" or not isinstance(body, dict) or context.operation is None:
        return body
    path = context.operation.path
    if path.endswith("/_search"):
        # The Hub's first call: the shopper typed the example card's code.
        return {**body, "cart": {"redemptionCode": EXAMPLE_REDEMPTION_CODE}}
    if path.endswith("/transactions"):
        # A Debit only works on the example card (its token); a Credit without token on any card.
        if kind == "debit":
            token = EXAMPLE_REDEMPTION_TOKEN
            return {**body, "operation": "Debit", "value": 1.0, "redemptionToken": token,
                    "redemptionCode": None}  # fmt: skip
        return {**body, "operation": "Credit", "value": 2.0, "redemptionToken": None,
                "redemptionCode": None}  # fmt: skip
    if path.endswith(("/settlements", "/cancellations")):
        return {**body, "value": 0.5}
    return body


@stateful_schema.hook("flatmap_body")
def _sometimes_a_realistic_body(
    context: schemathesis.HookContext, body: Any
) -> st.SearchStrategy[Any]:
    """Let the stateful run reach successful searches, Debits, settlements and cancellations."""
    kinds = st.sampled_from(["as generated", "debit", "credit"])
    return kinds.map(functools.partial(_realistic_body, context, body))


# ----------------------------------------------------------------------------- checks


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """No 5xx at all: every gift card failure the service foresees is a 4xx."""
    if response.status_code >= 500:
        raise AssertionError(
            f"Server error {response.status_code} on {case.operation.label}: {response.text[:500]}"
        )


def auth_errors_have_empty_bodies(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """The Hub requires 401 and 403 with an empty body (the document says so with no content)."""
    if response.status_code in (401, 403) and response.content:
        raise AssertionError(f"{response.status_code} with a body: {response.text[:200]}")


_CONTENT_RANGE = re.compile(r"^resources (\d+)-(\d+)/(\d+)$")
_REQUESTED_RANGE = re.compile(r"^\s*resources\s*=\s*(\d{1,9})\s*-\s*(\d{1,9})\s*$", re.IGNORECASE)


def content_range_agrees_with_the_page(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """`REST-Content-Range: resources {from}-{to}/{total}` starts where `REST-Range` asked, and
    counts the items answered."""
    operation_id = case.operation.definition.raw.get("operationId")
    if operation_id not in PAGED_OPERATIONS or response.status_code != 200:
        return
    (header,) = response.headers["rest-content-range"]
    match = _CONTENT_RANGE.match(header)
    assert match is not None, header
    first, last, total = (int(group) for group in match.groups())
    requested = _REQUESTED_RANGE.match(response.request.headers.get("rest-range", ""))
    assert first == (int(requested[1]) if requested else 0), (header, response.request.headers)
    items = len(response.json())
    assert last == first + max(items, 1) - 1, (header, items)
    assert total >= (first + items if items else 0), (header, items)


CHECKS: list[schemathesis.CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    auth_errors_have_empty_bodies,
    content_range_agrees_with_the_page,
]


def credentials_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """With the merchant's credentials, never a 401 or 403."""
    if response.status_code in (401, 403):
        raise AssertionError(f"{response.status_code} with valid credentials")


AUTHENTICATED_CHECKS = [*CHECKS, credentials_accepted]


# ----------------------------------------------------------------------------- the app


@dataclass
class InProcessApi(schemathesis_support.InProcessApi):
    def hub(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request as the Hub makes it, with the merchant's credentials."""
        headers = {**self.credentials, "Accept": VENDOR_JSON, **kwargs.pop("headers", {})}
        return self.request(method, BASE_URL + path, headers=headers, **kwargs)

    def send(self, case: Case, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.send_to(BASE_URL, case, headers)


def _issue_example_card(services: Services, merchant_name: str) -> Any:
    async def issue() -> Any:
        merchant = await services.merchants.by_name(merchant_name)
        assert merchant is not None
        order = IssueOrder(amount=EXAMPLE_CARD_BALANCE, caption="Loyalty program",
                           relation_name="loyalty-program")  # fmt: skip
        return await services.giftcards.issue(merchant, order, actor="test")

    return issue


@pytest.fixture
def api(anyio_backend: str, database_url: str) -> Iterator[InProcessApi]:
    """A fresh app on the test's (emptied) database, a merchant, the example card and Debit.

    `anyio_backend` makes anyio's plugin run the async `database_url` fixture for this sync test.
    On the way out, every card's totals must still agree with its ledger entries.
    """
    app = create_app(make_settings(database_url))
    # raise_app_exceptions=False: an unhandled exception must come back as the app's 500, which
    # the checks then report (the traceback is in the captured log).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(name="giftcard-conformance-app") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        services: Services = app.state.services
        issued = portal.call(services.merchants.add, "acme")
        merchant = MerchantCredentials(issued.name, issued.app_key, issued.app_token)
        in_process = InProcessApi(portal, client, services, merchant)
        # The card and the Debit get the documented ids, token and code.
        with mock.patch.multiple(
            "connector.giftcards.cards",
            generate_public_id=lambda: EXAMPLE_CARD_ID,
            generate_redemption_token=lambda: EXAMPLE_REDEMPTION_TOKEN,
            generate_redemption_code=lambda: EXAMPLE_REDEMPTION_CODE,
        ):
            card = portal.call(_issue_example_card(services, merchant.name))
        assert card.card.card_id == EXAMPLE_CARD_ID
        with mock.patch(
            "connector.giftcards.ledger.generate_public_id", lambda: EXAMPLE_TRANSACTION_ID
        ):
            debit = in_process.hub(
                "POST", f"/giftcards/{EXAMPLE_CARD_ID}/transactions", json=EXAMPLE_DEBIT
            )
        assert debit.status_code == 200, debit.text
        assert debit.json()["id"] == EXAMPLE_TRANSACTION_ID
        yield in_process

        cards = portal.call(services.giftcards.list, None, None, 0, 10_000)
        for found in cards:
            report = portal.call(services.giftcards.report, found.card_id)
            assert report.consistent, (found.card_id, report)
            assert report.ledger_available >= 0 and report.ledger_held >= 0, report


# ----------------------------------------------------------------------------- the document


_operations = operations_by_id


def test_document_describes_every_giftcard_route() -> None:
    """The gift card routes (without their trailing-slash twins) and the documented operations
    are the same set, and the document resolves them under the mount point, `/giftcard`."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))  # the lifespan is not run
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == GIFTCARD_PREFIX]
    routes = {
        (method, route.path)
        for route in mount.routes
        if isinstance(route, Route)
        for method in set(route.methods or ()) - {"HEAD"}
    }
    twins = {(method, path) for method, path in routes if path.endswith("/")}
    # Every route also answers with a trailing slash, and the document says so.
    assert twins == {(method, path + "/") for method, path in routes - twins}
    served = {
        (method, path.replace("{card_id}", "{giftCardId}").replace(
            "{transaction_id}", "{transactionId}"))
        for method, path in routes - twins
    }  # fmt: skip
    operations = _operations(schema)
    assert set(operations) == OPERATION_IDS
    assert served == {(op.method.upper(), op.path) for op in operations.values()}
    for operation in operations.values():
        assert operation.base_url.rstrip("/").endswith(GIFTCARD_PREFIX), operation.label
        assert "trailing slash" in operation.definition.raw["description"], operation.label


REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "searchGiftCards": SearchRequest,
    "createGiftCard": CreateCardRequest,
    "createGiftCardTransaction": CreateTransactionRequest,
    "settleGiftCardTransaction": OperationRequest,
    "cancelGiftCardTransaction": OperationRequest,
}


@pytest.mark.parametrize("operation_id", sorted(REQUEST_MODELS))
def test_request_schemas_require_what_the_service_requires(operation_id: str) -> None:
    """Lenient like the service: `required` is exactly what its model cannot do without, every
    field the model reads is documented, and unknown fields are allowed."""
    operation = _operations(schema)[operation_id]
    model = REQUEST_MODELS[operation_id]
    body = operation.definition.raw["requestBody"]
    if "$ref" in body:
        body = schema.raw_schema["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
    (ref,) = {media["schema"]["$ref"] for media in body["content"].values()}
    documented = schema.raw_schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    assert set(documented.get("required", [])) == {
        alias for alias, info in fields.items() if info.is_required()
    }
    assert set(fields) <= set(documented["properties"])
    assert documented.get("additionalProperties") is True
    assert model.model_config.get("extra") == "allow"


# ----------------------------------------------------------------------------- stateless


@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_operation_conforms(case: Case, api: InProcessApi) -> None:
    """Examples, coverage cases and fuzzed cases of one operation, with the Hub's credentials."""
    response = api.send(case)
    case.validate_response(response, checks=AUTHENTICATED_CHECKS)


def test_the_examples_reach_the_example_card(api: InProcessApi) -> None:
    """The documented examples are real calls on the example card: each answers 200."""
    for operation_id, operation in _operations(schema).items():
        for case in _example_cases(operation):
            response = api.send(case)
            case.validate_response(response, checks=AUTHENTICATED_CHECKS)
            assert response.status_code == 200, (operation_id, case.body, response.text)
    reached = {(operation, status) for operation, status, _ in api.seen}
    assert {(operation, 200) for operation in OPERATION_IDS} <= reached
    found = api.hub("POST", "/giftcards/_search",
                    json={"cart": {"redemptionCode": EXAMPLE_REDEMPTION_CODE}})  # fmt: skip
    assert [card["id"] for card in found.json()] == [EXAMPLE_CARD_ID]


def _example_cases(operation: Operation) -> list[Case]:
    """One case per documented request example (and one without a body for a GET)."""
    raw = operation.definition.raw
    parameters = {"giftCardId": EXAMPLE_CARD_ID, "transactionId": EXAMPLE_TRANSACTION_ID}
    path_parameters = {p.name: parameters[p.name] for p in operation.path_parameters} or None
    if "requestBody" not in raw:
        return [operation.Case(path_parameters=path_parameters)]
    body = raw["requestBody"]
    if "$ref" in body:
        body = schema.raw_schema["components"]["requestBodies"][body["$ref"].rsplit("/", 1)[1]]
    cases = []
    for media_type, media in body["content"].items():
        examples = [media["example"]] if "example" in media else []
        examples += [example["value"] for example in media.get("examples", {}).values()]
        cases += [
            operation.Case(path_parameters=path_parameters, body=example, media_type=media_type)
            for example in examples
        ]
    return cases


# ----------------------------------------------------------------------------- stateful


def test_stateful_links(api: InProcessApi) -> None:
    """createGiftCardTransaction -> settle/cancel/their lists/get, settle -> cancel, createGiftCard
    -> get/list/load, following the OpenAPI links, under the same checks."""

    # Schemathesis starts scenarios only from operations it deems likely to succeed on random
    # data: here `_search` alone (it takes `profileId` and `requestId` for references to resources
    # nothing produces). From there it follows the links it infers (a card's `id` into
    # `giftCardId`) and the document's. `test_every_link_leads_to_a_200` covers every link.
    class HubFlows(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            case.headers = {**(case.headers or {}), **api.credentials}

        def call(self, case: Case, **kwargs: Any) -> schemathesis.Response:
            return schemathesis.Response.from_any(api.send(case, headers={}))

        def validate_response(
            self, response: schemathesis.Response, case: Case,
            additional_checks: list[schemathesis.CheckFunction] | None = None, **kwargs: Any,
        ) -> None:  # fmt: skip
            case.validate_response(response, checks=AUTHENTICATED_CHECKS, recorder=self.recorder)

    HubFlows.run(settings=STATEFUL_SETTINGS)

    # The run went (from `_search`, the Hub's first call) through the links to successful
    # settlements and cancellations.
    reached = {(operation, status) for operation, status, _ in api.seen}
    for operation in (
        "createGiftCardTransaction",
        "settleGiftCardTransaction",
        "cancelGiftCardTransaction",
        "listGiftCardSettlements",
        "listGiftCardCancellations",
    ):
        assert (operation, 200) in reached, (operation, sorted(api.seen, key=str))


def _fresh() -> str:
    return uuid.uuid4().hex.upper()


# A request each link source answers 200 to: path parameters and a body (fresh every time).
LINK_SOURCES: dict[str, tuple[dict[str, str] | None, Callable[[], dict[str, Any]]]] = {
    "createGiftCard": (None, lambda: {"relationName": f"link-{_fresh()}", "caption": "links"}),
    "createGiftCardTransaction": (
        {"giftCardId": EXAMPLE_CARD_ID},
        lambda: {**EXAMPLE_DEBIT, "value": 5, "requestId": _fresh()},
    ),
    "settleGiftCardTransaction": (
        {"giftCardId": EXAMPLE_CARD_ID, "transactionId": EXAMPLE_TRANSACTION_ID},
        lambda: {"value": 2, "requestId": _fresh()},
    ),
}
# A body each link target that takes one accepts (its path parameters come from the link). A
# Credit without token or code is accepted on any card, a new one included.
LINK_TARGET_BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "createGiftCardTransaction": lambda: {"operation": "Credit", "value": 10,
                                          "requestId": _fresh()},
    "settleGiftCardTransaction": lambda: {"value": 1, "requestId": _fresh()},
    "cancelGiftCardTransaction": lambda: {"value": 1, "requestId": _fresh()},
}  # fmt: skip


def _evaluate(expression: str, path_parameters: Mapping[str, str], body: Any) -> Any:
    """The runtime expressions the document's links use."""
    if expression.startswith("$request.path."):
        return path_parameters[expression.removeprefix("$request.path.")]
    if expression.startswith("$response.body#/"):
        return body[expression.removeprefix("$response.body#/")]
    raise AssertionError(f"unsupported link expression {expression!r}")


def _case(operation: Operation, path_parameters: Mapping[str, str] | None, body: Any) -> Case:
    if body is None:
        return operation.Case(path_parameters=dict(path_parameters or {}) or None)
    return operation.Case(
        path_parameters=dict(path_parameters or {}) or None, body=body, media_type=VENDOR_JSON
    )


def test_every_link_leads_to_a_200(api: InProcessApi) -> None:
    """Each documented link, evaluated on a real answer of its source, makes a call its target
    answers 200: the links the stateful run may not take are followed here."""
    operations = _operations(schema)
    followed: set[tuple[str, str]] = set()
    documented: set[tuple[str, str]] = set()
    for source_id, operation in operations.items():
        links = operation.definition.raw["responses"]["200"].get("links", {})
        documented |= {(source_id, link["operationId"]) for link in links.values()}
        for name, link in links.items():
            path_parameters, body = LINK_SOURCES[source_id]
            source = _case(operation, path_parameters, body())
            answer = api.send(source)
            source.validate_response(answer, checks=AUTHENTICATED_CHECKS)
            assert answer.status_code == 200, (source_id, answer.text)
            target_id = link["operationId"]
            parameters = {
                parameter: _evaluate(expression, source.path_parameters or {}, answer.json())
                for parameter, expression in link["parameters"].items()
            }
            target_body = LINK_TARGET_BODIES.get(target_id)
            case = _case(operations[target_id], parameters, target_body() if target_body else None)
            response = api.send(case)
            case.validate_response(response, checks=AUTHENTICATED_CHECKS)
            assert response.status_code == 200, (source_id, name, response.text)
            followed.add((source_id, target_id))
    assert followed == documented
    assert len(documented) >= 10


# ----------------------------------------------------------------------------- authentication

# (name, headers, status). The Payment Provider Protocol's header names do not count here.
BAD_CREDENTIALS: list[tuple[str, Callable[[MerchantCredentials], dict[str, str]], int]] = [
    ("none", lambda merchant: {}, 401),
    ("empty", lambda merchant: {"X-PROVIDER-API-AppKey": "", "X-PROVIDER-API-AppToken": ""}, 401),
    ("key only", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_key}, 401),
    ("token only", lambda merchant: {"X-PROVIDER-API-AppToken": merchant.app_token}, 401),
    ("empty key", lambda merchant: {"X-PROVIDER-API-AppKey": "",
                                    "X-PROVIDER-API-AppToken": merchant.app_token}, 401),
    ("payment protocol headers", lambda merchant: merchant.headers, 401),
    ("wrong token", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_key,
                                      "X-PROVIDER-API-AppToken": merchant.app_token + "x"}, 403),
    ("unknown key", lambda merchant: {"X-PROVIDER-API-AppKey": "vtexappkey-unknown",
                                      "X-PROVIDER-API-AppToken": merchant.app_token}, 403),
    ("swapped", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_token,
                                  "X-PROVIDER-API-AppToken": merchant.app_key}, 403),
]  # fmt: skip


def _authenticated_request(operation: Operation) -> Case:
    """A request the operation would accept with the Hub's credentials, as the Hub sends it."""
    fresh = uuid.uuid4().hex.upper()
    bodies: dict[str, dict[str, Any]] = {
        "searchGiftCards": {"client": {"email": "email@domain.com"},
                            "cart": {"redemptionCode": EXAMPLE_REDEMPTION_CODE}},
        "createGiftCard": {"relationName": f"probe-{fresh}", "caption": "probe",
                           "profileId": "probe@example.com"},
        "createGiftCardTransaction": {**EXAMPLE_DEBIT, "value": 1, "requestId": fresh},
        "settleGiftCardTransaction": {"value": 1, "requestId": fresh},
        "cancelGiftCardTransaction": {"value": 1, "requestId": fresh},
    }  # fmt: skip
    parameters = {"giftCardId": EXAMPLE_CARD_ID, "transactionId": EXAMPLE_TRANSACTION_ID}
    path_parameters = {p.name: parameters[p.name] for p in operation.path_parameters} or None
    operation_id = _operation_id(operation)
    if operation_id not in bodies:
        return operation.Case(path_parameters=path_parameters)
    return operation.Case(
        path_parameters=path_parameters, body=bodies[operation_id], media_type=VENDOR_JSON
    )


def _state(api: InProcessApi) -> dict[str, Any]:
    """What a request could have changed: every card, the example card's ledger and the example
    transaction's settlements and cancellations."""
    cards = api.call(api.services.giftcards.list, None, None, 0, 10_000)
    report = api.call(api.services.giftcards.report, EXAMPLE_CARD_ID)
    transaction = f"/giftcards/{EXAMPLE_CARD_ID}/transactions/{EXAMPLE_TRANSACTION_ID}"
    return {
        "cards": sorted(card.card_id for card in cards),
        "totals": (report.card.available_minor, report.card.held_minor),
        "transactions": [(t.transaction_id, t.settled_minor, t.released_minor, t.refunded_minor)
                         for t in report.transactions],
        "entries": len(report.entries),
        "settlements": api.hub("GET", transaction + "/settlements").json(),
        "cancellations": api.hub("GET", transaction + "/cancellations").json(),
    }  # fmt: skip


def test_requests_without_good_credentials_answer_401_or_403(api: InProcessApi) -> None:
    """Missing credentials: 401; wrong ones: 403; both with an empty body, as the document says,
    on every operation; and nothing happens. Then the same requests, with the right credentials,
    succeed: the refusals were about the credentials only."""
    operations = _operations(schema)
    assert {
        name for name, operation in operations.items() if operation.definition.raw.get("security")
    } == OPERATION_IDS
    before = _state(api)
    for operation in operations.values():
        case = _authenticated_request(operation)
        for name, credentials, status in BAD_CREDENTIALS:
            response = api.send(case, headers=credentials(api.merchant))
            assert response.status_code == status, (operation.label, name, response.text)
            assert response.content == b"", (operation.label, name)
            case.validate_response(response, checks=CHECKS)
    assert _state(api) == before

    for operation in operations.values():
        case = _authenticated_request(operation)
        response = api.send(case)
        case.validate_response(response, checks=AUTHENTICATED_CHECKS)
        assert response.status_code == 200, (operation.label, response.text)


# ----------------------------------------------------------------------------- boundary values

# (operationId, name, body overrides, expected status): values at the edges of what the service
# accepts. Each gets the answer the document gives, never a 5xx.
TOO_LONG = "x" * 201
BOUNDARY_VALUES: list[tuple[str, str, dict[str, Any], int]] = [
    ("createGiftCard", "expiringDate at the end of year 9999",
     {"expiringDate": "9999-12-31T23:59:59.999Z"}, 200),
    ("createGiftCard", "emissionDate without a zone", {"emissionDate": "2026-08-01T13:15:30"}, 200),
    ("createGiftCard", "relationName of 201 characters", {"relationName": TOO_LONG}, 400),
    ("createGiftCard", "profileId of 201 characters", {"profileId": TOO_LONG}, 400),
    ("createGiftCard", "NUL in caption", {"caption": "\x00"}, 400),
    ("createGiftCard", "restricted without an owner",
     {"restrictedToOwner": True, "profileId": None}, 400),
    ("createGiftCard", "a date that is not one", {"emissionDate": "yesterday"}, 400),
    ("createGiftCardTransaction", "value 1e300", {"value": 1e300}, 400),
    ("createGiftCardTransaction", "value beyond 10^15 minor units", {"value": 10**16}, 400),
    ("createGiftCardTransaction", "more decimals than BRL has", {"value": "0.001"}, 400),
    ("createGiftCardTransaction", "value 0", {"value": 0}, 400),
    ("createGiftCardTransaction", "requestId of 201 characters", {"requestId": TOO_LONG}, 400),
    ("createGiftCardTransaction", "description of 501 characters", {"description": "x" * 501},
     400),
    ("createGiftCardTransaction", "fractional sequence", {"orderInfo": {"sequence": 1.5}}, 400),
    ("createGiftCardTransaction", "operation in lower case", {"operation": "debit"}, 200),
    ("createGiftCardTransaction", "more than the balance", {"value": 1000}, 422),
    ("createGiftCardTransaction", "a wrong token", {"redemptionToken": "wrong"}, 422),
    ("createGiftCardTransaction", "the example's requestId with another value",
     {"requestId": EXAMPLE_DEBIT["requestId"]}, 409),
    ("settleGiftCardTransaction", "more than is held", {"value": 31.91}, 422),
    ("settleGiftCardTransaction", "value beyond 10^15 minor units", {"value": 10**16}, 400),
    ("cancelGiftCardTransaction", "more than the transaction", {"value": 31.91}, 422),
    ("cancelGiftCardTransaction", "NUL in requestId", {"requestId": "\x00"}, 400),
]  # fmt: skip


def test_boundary_values_conform(api: InProcessApi) -> None:
    """Values at the edges of what the service accepts get the documented answer, never a 5xx."""
    operations = _operations(schema)
    problems = []
    for operation_id, name, overrides, status in BOUNDARY_VALUES:
        case = _authenticated_request(operations[operation_id])
        case.body = {**case.body, **overrides}
        response = api.send(case)
        case.validate_response(response, checks=AUTHENTICATED_CHECKS)
        if response.status_code != status:
            problems.append(f"{operation_id} {name}: {response.status_code} {response.text}")
    assert not problems, "\n".join(problems)


# Values that broke the service (found by this module's fuzzing), with the answer the document
# gives: a 500 or a hang before, a 400 now.
ONCE_BROKEN: list[Any] = [
    pytest.param(
        "createGiftCardTransaction", {"orderInfo": {"orderId": TOO_LONG}}, 400,
        id="orderId of 201 characters",
    ),
    pytest.param(
        "createGiftCardTransaction", {"value": "1e10000000"}, 400,
        id="value beyond the decimal context",
    ),
    pytest.param(
        "settleGiftCardTransaction", {"value": "1e10000000"}, 400,
        id="settlement beyond the decimal context",
    ),
    pytest.param(
        "createGiftCard", {"emissionDate": "0001-01-01T00:00:00+05:00"}, 400,
        id="emissionDate before year 1 in UTC",
    ),
    pytest.param(
        "createGiftCard", {"expiringDate": "9999-12-31T23:00:00-05:00"}, 400,
        id="expiringDate after year 9999 in UTC",
    ),
    pytest.param(
        "createGiftCard", {"emissionDate": "0999-01-01T00:00:00Z"}, 200,
        id="emissionDate before year 1000",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("operation_id", "overrides", "status"), ONCE_BROKEN)
def test_values_that_once_broke_the_service(
    api: InProcessApi, operation_id: str, overrides: dict[str, Any], status: int
) -> None:
    """Too long an orderId, an amount beyond any decimal context, dates outside years 1-9999
    in UTC, years before 1000."""
    operation = _operations(schema)[operation_id]
    case = _authenticated_request(operation)
    case.body = {**case.body, **overrides}
    response = api.send(case)
    case.validate_response(response, checks=AUTHENTICATED_CHECKS)
    assert response.status_code == status, response.text
