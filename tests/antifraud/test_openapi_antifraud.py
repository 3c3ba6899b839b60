"""The Anti-fraud Provider Protocol routes against ``openapi.yaml``, with Schemathesis, in-process.

``tests/test_openapi_document.py`` checks the document on its own (valid OpenAPI, agrees with
VTEX's ``antifraud-provider-protocol.json``). This module checks the service against it, as
``tests/giftcards/test_openapi_giftcards.py`` does for gift cards:

* the document describes every anti-fraud route (under full ``/antifraud/...`` paths and the
  path-level server ``/``), and its request schema requires what the service's model requires,
  describes every field it reads and says `null` wherever the model takes it;
* every order VTEX documents (its examples, the bodies its property examples make up, its test
  suite's) is accepted by ``protocol.antifraud.AnalysisRequest`` and analysed (200);
* Schemathesis cases (explicit examples, coverage cases, positive and negative fuzzing) for every
  operation find no server error and no status, header, content type or body the document does
  not declare;
* a stateful run follows the document's links (``antifraudSendTransaction`` -> status read,
  update, stop), and every link, evaluated on a real answer, leads to a 200;
* every authenticated operation answers ``401`` with the documented ``Error`` body when the
  credentials are missing or wrong, and does nothing; status reads without credentials find
  test-suite analyses only;
* values at the edges get the documented answer, among them the ones that once broke the
  service (a 500).

Every test starts from an emptied database with one merchant, VTEX's example analysis
(``EXAMPLE_TRANSACTION_ID``, the id of every documented example, with the documented ``tid``) and
a test-suite analysis (``SUITE_TRANSACTION_ID``, the documented test-suite example), so that the
examples and part of the generated requests reach real analyses. The app is driven as in the gift
card module: an anyio blocking portal runs its lifespan once per test, an ``httpx.AsyncClient``
on an ``httpx.ASGITransport`` serves the requests, Schemathesis only generates them and judges
the answers. Generation is derandomized and bounded.

``positive_data_acceptance`` and ``negative_data_rejection`` are off, as in the other modules: the
service answers 400 to schema-valid orders (a PUT whose body names another id, a value beyond 18
integer digits) and accepts what it does not read.
"""

from __future__ import annotations

import functools
import json
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

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
from sqlalchemy import select
from starlette.routing import Mount, Route

from connector.app import ANTIFRAUD_PREFIX, Services, create_app
from connector.db.tables import AntifraudAnalysis
from protocol.antifraud import AnalysisRequest
from tests import schemathesis_support
from tests.antifraud.conftest import SUITE, order
from tests.conftest import MerchantCredentials, make_settings
from tests.schemathesis_support import (
    Case,
    Operation,
    hypothesis_settings,
    operations_by_id,
    tagged_schemas,
)
from tests.test_openapi_document import (
    VTEX_ANTIFRAUD_SPEC_PATH,
    _load_vtex_spec,
    vtex_antifraud_request_examples,
)

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
ORIGIN = "http://testserver"
ANTIFRAUD_TAG = "Anti-fraud Provider Protocol"
OPERATION_IDS = frozenset(
    {
        "antifraudManifest",
        "antifraudPreAnalysis",
        "antifraudSendTransaction",
        "antifraudGetTransaction",
        "antifraudUpdateTransaction",
        "antifraudStopTransaction",
    }
)
# The ids of the documented examples: VTEX's order, analysed with the documented `tid`, and the
# test suite's order (case 1, approved), analysed in test-suite mode.
EXAMPLE_TRANSACTION_ID = "D3AA1FC8372E430E8236649DB5EBD08E"
EXAMPLE_TID = "4692c1f54d514fe69da0b472a3b2a770"
SUITE_TRANSACTION_ID = "3F2504E04F8911D39A0C0305E82C33011"
UNAUTHORIZED_CODES = frozenset({"missing-credentials", "unauthorized"})

MAX_EXAMPLES = 12
HYPOTHESIS_SETTINGS = hypothesis_settings(MAX_EXAMPLES)
STATEFUL_SETTINGS = settings(
    HYPOTHESIS_SETTINGS,
    max_examples=15,
    stateful_step_count=6,
    phases=[Phase.generate, Phase.shrink],
)


schema, stateful_schema = tagged_schemas(
    OPENAPI_PATH, ANTIFRAUD_TAG, MAX_EXAMPLES, stateful_steps=6
)
_operations = operations_by_id


# ----------------------------------------------------------------------------- generation hooks


def _retarget(case: Case, choices: tuple[int, bool]) -> Case:
    """Point a case at an existing analysis (VTEX's example, or the test suite's) and, for a
    PUT, make the body name the path's id; else a random id only reaches the 404 and
    `id-mismatch` branches."""
    target, same_id = choices
    parameters = dict(case.path_parameters or {})
    if target:
        parameters["transactionId"] = (EXAMPLE_TRANSACTION_ID, SUITE_TRANSACTION_ID)[target - 1]
    case.path_parameters = parameters
    if same_id and isinstance(case.body, dict) and case.operation.method.lower() == "put":
        case.body = {**case.body, "id": parameters["transactionId"]}
    return case


@schema.hook("flatmap_case")
def _often_on_an_existing_analysis(
    context: schemathesis.HookContext, case: Case
) -> st.SearchStrategy[Case]:
    if "transactionId" not in (case.path_parameters or {}):
        return st.just(case)
    choices = st.tuples(st.integers(min_value=0, max_value=2), st.booleans())
    return choices.map(functools.partial(_retarget, case))


@stateful_schema.hook("flatmap_body")
def _sometimes_a_real_order(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
    """Let the stateful run start from analyses of realistic orders (a fresh id each, so that
    every POST analyses), besides the generated ones."""
    if not isinstance(body, dict) or context.operation is None:
        return st.just(body)
    if context.operation.method.lower() != "post":
        return st.just(body)
    real = st.uuids().map(lambda fresh: order(fresh.hex.upper()))
    return st.one_of(st.just(body), real)


# ----------------------------------------------------------------------------- checks


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """No 5xx at all: every failure the service foresees is a 4xx."""
    if response.status_code >= 500:
        raise AssertionError(
            f"Server error {response.status_code} on {case.operation.label}: {response.text[:500]}"
        )


def one_score(ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case) -> None:
    """`score` and `fraudRiskPercentage`, VTEX's two names of one value, agree."""
    if response.status_code != 200:
        return
    body = response.json()
    if isinstance(body, dict) and "fraudRiskPercentage" in body:
        assert body["score"] == body["fraudRiskPercentage"], body


CHECKS: list[schemathesis.CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    one_score,
]


def credentials_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """With the merchant's credentials, never a 401."""
    if response.status_code == 401:
        raise AssertionError(f"401 with valid credentials: {response.text[:200]}")


AUTHENTICATED_CHECKS = [*CHECKS, credentials_accepted]


# ----------------------------------------------------------------------------- the app


@dataclass
class InProcessApi(schemathesis_support.InProcessApi):
    def vtex(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request as VTEX's gateway makes it, with the merchant's credentials."""
        headers = {**self.credentials, **kwargs.pop("headers", {})}
        return self.request(method, ORIGIN + ANTIFRAUD_PREFIX + path, headers=headers, **kwargs)

    def send(self, case: Case, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return self.send_to(ORIGIN, case, headers)

    def analyses(self) -> list[tuple[str, str, bool]]:
        """(transaction id, status, stopped) of every analysis."""

        async def read() -> list[tuple[str, str, bool]]:
            async with self.services.database.reader() as session:
                rows = await session.execute(
                    select(
                        AntifraudAnalysis.transaction_id,
                        AntifraudAnalysis.status,
                        AntifraudAnalysis.stopped_at,
                    ).order_by(AntifraudAnalysis.transaction_id)
                )
                return [(tid, status, stopped is not None) for tid, status, stopped in rows]

        result: list[tuple[str, str, bool]] = self.call(read)
        return result


# VTEX's example hook (`https://hook.vtex.com/notifyIfChangeStatus`) is allowed, besides the
# test payloads' example.com: hooks off the allow-list are refused (`400 hook-url-not-allowed`).
CALLBACK_HOSTS = ["*.example.com", "example.com", "hook.vtex.com"]


def _start(database_url: str, **overrides: Any) -> Iterator[InProcessApi]:
    settings = make_settings(database_url, callback_allowed_hosts=CALLBACK_HOSTS, **overrides)
    app = create_app(settings)
    # raise_app_exceptions=False: an unhandled exception comes back as the app's 500, which the
    # checks then report (the traceback is in the captured log).
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(name="antifraud-conformance-app") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        services: Services = app.state.services
        issued = portal.call(services.merchants.add, "acme")
        merchant = MerchantCredentials(issued.name, issued.app_key, issued.app_token)
        api = InProcessApi(portal, client, services, merchant)
        with mock.patch("connector.antifraud.service.generate_public_id", lambda: EXAMPLE_TID):
            created = api.vtex("POST", "/transactions", json=order(EXAMPLE_TRANSACTION_ID))
        assert created.status_code == 200, created.text
        assert (created.json()["tid"], created.json()["status"]) == (EXAMPLE_TID, "approved")
        suite = api.vtex("POST", "/transactions", json=order(SUITE_TRANSACTION_ID), headers=SUITE)
        assert suite.status_code == 200, suite.text
        if settings.test_suite_enabled:
            assert suite.json()["responses"] == {"testSuiteCase": "1"}, suite.text
        yield api


@pytest.fixture
def api(anyio_backend: str, database_url: str) -> Iterator[InProcessApi]:
    """A fresh app on the test's (emptied) database, a merchant, VTEX's example analysis and a
    test-suite one. `anyio_backend` lets anyio's plugin run the async `database_url` fixture."""
    yield from _start(database_url)


# ----------------------------------------------------------------------------- the document


def test_document_describes_every_antifraud_route() -> None:
    """The anti-fraud routes and the documented operations are the same set, named from the
    root (`/antifraud/...`) under the server `/`."""
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))  # the lifespan is not run
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == ANTIFRAUD_PREFIX]
    served = {
        (method, ANTIFRAUD_PREFIX + route.path.replace("{transaction_id}", "{transactionId}"))
        for route in mount.routes
        if isinstance(route, Route)
        for method in set(route.methods or ()) - {"HEAD"}
    }
    operations = _operations(schema)
    assert set(operations) == OPERATION_IDS
    assert served == {(op.method.upper(), op.path) for op in operations.values()}
    for operation in operations.values():
        # The path-level server `/`, not the global `/payment-provider`.
        assert urlsplit(operation.base_url).path == "/", operation.base_url


def _component(name: str) -> dict[str, Any]:
    found: dict[str, Any] = schema.raw_schema["components"]["schemas"][name]
    return found


def _documented_model(reference: Any) -> tuple[str, dict[str, Any]] | None:
    """The component a property refers to, itself or through `items`."""
    if isinstance(reference, dict) and "$ref" in reference:
        name = reference["$ref"].rsplit("/", 1)[1]
        return name, _component(name)
    if isinstance(reference, dict) and "items" in reference:
        return _documented_model(reference["items"])
    return None


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (`Buyer | None`, `list[Payment] | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        nested = _nested_model(argument)
        if nested is not None:
            return nested
    return None


def _model_problems(model: type[BaseModel], name: str, documented: dict[str, Any]) -> list[str]:
    """Required as the model requires, every field the model reads documented (nullable where
    the model takes null), unknown fields allowed; nested models likewise."""
    problems: list[str] = []
    fields = {info.alias or field_name: info for field_name, info in model.model_fields.items()}
    properties = documented.get("properties", {})
    required = {alias for alias, info in fields.items() if info.is_required()}
    if set(documented.get("required", [])) != required:
        problems.append(f"{name}: required {documented.get('required')}, model {sorted(required)}")
    if documented.get("additionalProperties", True) is not True:
        problems.append(f"{name}: unknown fields are kept, additionalProperties must be true")
    if model.model_config.get("extra") != "allow":
        problems.append(f"{name}: the model must keep unknown fields")
    for alias, info in fields.items():
        if alias not in properties:
            problems.append(f"{name}.{alias}: read by the model, not documented")
            continue
        prop = properties[alias]
        target = _documented_model(prop)
        resolved = target[1] if target and "$ref" in prop else prop
        takes_null = types.NoneType in typing.get_args(info.annotation)
        if takes_null and resolved.get("nullable") is not True:
            problems.append(f"{name}.{alias}: the model takes null, the document does not")
        nested = _nested_model(info.annotation)
        if nested is not None:
            if target is None:
                problems.append(f"{name}.{alias}: {nested.__name__} is not a documented schema")
            else:
                problems += _model_problems(nested, target[0], target[1])
    return problems


def test_request_schema_describes_the_model() -> None:
    """`AntifraudAnalysisRequest` (and the schemas it refers to) against
    `protocol.antifraud.AnalysisRequest` (and its nested models): lenient like the service."""
    operations = _operations(schema)
    for operation_id in ("antifraudPreAnalysis", "antifraudSendTransaction",
                         "antifraudUpdateTransaction"):  # fmt: skip
        body = operations[operation_id].definition.raw["requestBody"]
        assert body == {"$ref": "#/components/requestBodies/AntifraudAnalysis"}, operation_id
    body = schema.raw_schema["components"]["requestBodies"]["AntifraudAnalysis"]
    (media,) = body["content"].values()
    assert media["schema"] == {"$ref": "#/components/schemas/AntifraudAnalysisRequest"}
    problems = _model_problems(
        AnalysisRequest, "AntifraudAnalysisRequest", _component("AntifraudAnalysisRequest")
    )
    assert not problems, "\n".join(problems)


def _documented_orders() -> list[tuple[str, dict[str, Any]]]:
    body = schema.raw_schema["components"]["requestBodies"]["AntifraudAnalysis"]
    examples = body["content"]["application/json"]["examples"]
    return [(f"documented {name}", example["value"]) for name, example in examples.items()]


def _vtex_orders() -> list[tuple[str, Any]]:
    return vtex_antifraud_request_examples(_load_vtex_spec(VTEX_ANTIFRAUD_SPEC_PATH))


def test_every_documented_order_is_read_by_the_model() -> None:
    """Every order VTEX documents (its examples, the bodies its property examples make up, its
    test suite's, a gift card payment) and every documented example parse."""
    samples = [*_vtex_orders(), *_documented_orders()]
    assert len(samples) >= 8
    for name, sample in samples:
        parsed = AnalysisRequest.model_validate(sample)
        assert parsed.id == sample["id"], name


def test_every_vtex_order_is_analysed(api: InProcessApi) -> None:
    """... and is analysed: 200 from the pre-analysis and the analysis, as documented."""
    operations = _operations(schema)
    for name, sample in _vtex_orders():
        body = {**sample, "id": uuid.uuid4().hex.upper()}
        for operation_id in ("antifraudPreAnalysis", "antifraudSendTransaction"):
            case = operations[operation_id].Case(body=body, media_type="application/json")
            response = api.send(case)
            case.validate_response(response, checks=AUTHENTICATED_CHECKS)
            assert response.status_code == 200, (name, operation_id, response.text)


# ----------------------------------------------------------------------------- stateless


@schema.parametrize()
@HYPOTHESIS_SETTINGS
def test_operation_conforms(case: Case, api: InProcessApi) -> None:
    """Examples, coverage cases and fuzzed cases of one operation, with VTEX's credentials."""
    response = api.send(case)
    case.validate_response(response, checks=AUTHENTICATED_CHECKS)


def _example_cases(operation: Operation) -> list[Case]:
    """One case per documented request example (one without a body for GET and DELETE), on the
    analysis it names: a PUT's path is its body's `id`."""
    raw = operation.definition.raw
    path = {"transactionId": EXAMPLE_TRANSACTION_ID} if operation.path_parameters else None
    if "requestBody" not in raw:
        return [operation.Case(path_parameters=path)]
    return [
        operation.Case(
            path_parameters={"transactionId": example["id"]} if path else None,
            body=example,
            media_type="application/json",
        )
        for _, example in _documented_orders()
    ]


def test_the_examples_reach_the_example_analyses(api: InProcessApi) -> None:
    """The documented examples are real calls: each answers 200, on VTEX's example analysis and
    the test-suite one (the stop last, as it stops the analysis)."""
    operations = _operations(schema)
    order_of_calls = sorted(operations, key=lambda name: name == "antifraudStopTransaction")
    for operation_id in order_of_calls:
        for case in _example_cases(operations[operation_id]):
            response = api.send(case)
            case.validate_response(response, checks=AUTHENTICATED_CHECKS)
            assert response.status_code == 200, (operation_id, case.body, response.text)
    assert {(operation, 200) for operation in OPERATION_IDS} <= {
        (operation, status) for operation, status, _ in api.seen
    }
    # The stored analyses answered: VTEX's example (approved, now stopped), the test suite's.
    read = api.vtex("GET", f"/transactions/{EXAMPLE_TRANSACTION_ID}").json()
    assert (read["tid"], read["status"]) == (EXAMPLE_TID, "approved")
    assert (EXAMPLE_TRANSACTION_ID, "approved", True) in api.analyses()


# ----------------------------------------------------------------------------- stateful


def test_stateful_links(api: InProcessApi) -> None:
    """An analysis, then its status reads, updates (the same order, by the link's requestBody)
    and stop, following the OpenAPI links, under the same checks."""

    class VtexFlows(stateful_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Case) -> None:
            case.headers = {**(case.headers or {}), **api.credentials}

        def call(self, case: Case, **kwargs: Any) -> schemathesis.Response:
            return schemathesis.Response.from_any(api.send(case, headers={}))

        def validate_response(
            self, response: schemathesis.Response, case: Case,
            additional_checks: list[schemathesis.CheckFunction] | None = None, **kwargs: Any,
        ) -> None:  # fmt: skip
            case.validate_response(response, checks=AUTHENTICATED_CHECKS, recorder=self.recorder)

    VtexFlows.run(settings=STATEFUL_SETTINGS)
    reached = {(operation, status) for operation, status, _ in api.seen}
    for operation in (
        "antifraudSendTransaction",
        "antifraudGetTransaction",
        "antifraudUpdateTransaction",
        "antifraudStopTransaction",
    ):
        assert (operation, 200) in reached, (operation, sorted(api.seen, key=str))


def _evaluate(expression: str, request_body: Any, body: Any) -> Any:
    """The runtime expressions the document's links use."""
    if expression == "$request.body":
        return request_body
    if expression.startswith("$response.body#/"):
        return body[expression.removeprefix("$response.body#/")]
    raise AssertionError(f"unsupported link expression {expression!r}")


def test_every_link_leads_to_a_200(api: InProcessApi) -> None:
    """Each documented link, evaluated on a real answer of its source, makes a call its target
    answers 200."""
    operations = _operations(schema)
    followed: set[tuple[str, str]] = set()
    documented: set[tuple[str, str]] = set()
    for source_id, operation in operations.items():
        links = operation.definition.raw["responses"]["200"].get("links", {})
        documented |= {(source_id, link["operationId"]) for link in links.values()}
        for name, link in links.items():
            source = operation.Case(
                body=order(uuid.uuid4().hex.upper()), media_type="application/json"
            )
            answer = api.send(source)
            source.validate_response(answer, checks=AUTHENTICATED_CHECKS)
            assert answer.status_code == 200, (source_id, answer.text)
            target = operations[link["operationId"]]
            parameters = {
                parameter: _evaluate(expression, source.body, answer.json())
                for parameter, expression in link["parameters"].items()
            }
            if "requestBody" in link:
                body = _evaluate(link["requestBody"], source.body, answer.json())
                case = target.Case(
                    path_parameters=parameters, body=body, media_type="application/json"
                )
            else:
                case = target.Case(path_parameters=parameters)
            response = api.send(case)
            case.validate_response(response, checks=AUTHENTICATED_CHECKS)
            assert response.status_code == 200, (source_id, name, response.text)
            assert response.json()["id"] == answer.json()["id"]
            followed.add((source_id, link["operationId"]))
    assert followed == documented
    assert len(documented) == 3


# ----------------------------------------------------------------------------- authentication

# (name, headers): none of them authenticates. The Payment Provider Protocol's header names do
# not count here.
BAD_CREDENTIALS: list[tuple[str, Callable[[MerchantCredentials], dict[str, str]]]] = [
    ("none", lambda merchant: {}),
    ("empty", lambda merchant: {"X-PROVIDER-API-AppKey": "", "X-PROVIDER-API-AppToken": ""}),
    ("key only", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_key}),
    ("token only", lambda merchant: {"X-PROVIDER-API-AppToken": merchant.app_token}),
    ("empty key", lambda merchant: {"X-PROVIDER-API-AppKey": "",
                                    "X-PROVIDER-API-AppToken": merchant.app_token}),
    ("payment protocol headers", lambda merchant: merchant.headers),
    ("wrong token", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_key,
                                      "X-PROVIDER-API-AppToken": merchant.app_token + "x"}),
    ("unknown key", lambda merchant: {"X-PROVIDER-API-AppKey": "vtexappkey-unknown",
                                      "X-PROVIDER-API-AppToken": merchant.app_token}),
    ("swapped", lambda merchant: {"X-PROVIDER-API-AppKey": merchant.app_token,
                                  "X-PROVIDER-API-AppToken": merchant.app_key}),
]  # fmt: skip


def _authenticated_request(operation: Operation, transaction_id: str) -> Case:
    """A request the operation would accept with the merchant's credentials, on the example
    analysis (a POST: a new order; a PUT: the example order)."""
    raw = operation.definition.raw
    path = {"transactionId": transaction_id} if operation.path_parameters else None
    if "requestBody" not in raw:
        return operation.Case(path_parameters=path)
    body = order(transaction_id if path else uuid.uuid4().hex.upper())
    return operation.Case(path_parameters=path, body=body, media_type="application/json")


def test_requests_without_good_credentials_answer_401(api: InProcessApi) -> None:
    """Missing or wrong credentials: 401 with the documented `Error` body, on every operation
    but the public manifest, in test-suite mode too; nothing happens (a status read without
    credentials of a real analysis is refused as well). Then the same requests, with the right
    credentials, succeed: the refusals were about the credentials only."""
    operations = _operations(schema)
    public = {name for name, op in operations.items() if op.definition.raw.get("security") == []}
    assert public == {"antifraudManifest"}
    before = api.analyses()
    for operation_id, operation in operations.items():
        if operation_id in public:
            continue
        case = _authenticated_request(operation, EXAMPLE_TRANSACTION_ID)
        for name, credentials in BAD_CREDENTIALS:
            for suite in ({}, SUITE):
                response = api.send(case, headers={**credentials(api.merchant), **suite})
                assert response.status_code == 401, (operation_id, name, response.text)
                assert response.json()["code"] in UNAUTHORIZED_CODES, response.text
                case.validate_response(response, checks=CHECKS)
    assert api.analyses() == before

    for operation_id, operation in operations.items():
        case = _authenticated_request(operation, EXAMPLE_TRANSACTION_ID)
        response = api.send(case)
        case.validate_response(response, checks=AUTHENTICATED_CHECKS)
        assert response.status_code == 200, (operation_id, response.text)


def test_status_reads_without_credentials(api: InProcessApi) -> None:
    """VTEX's test suite reads statuses without credentials (reference, A6): a test-suite
    analysis is found so, nothing else is (401, as for an unknown id: no hint either way)."""
    operation = _operations(schema)["antifraudGetTransaction"]
    answers = {}
    for transaction_id in (SUITE_TRANSACTION_ID, EXAMPLE_TRANSACTION_ID, "6B1E0A3C5D7F4B2A9C8E"):
        case = operation.Case(path_parameters={"transactionId": transaction_id})
        response = api.send(case, headers={})
        case.validate_response(response, checks=CHECKS)
        answers[transaction_id] = response.status_code
    assert answers == {SUITE_TRANSACTION_ID: 200, EXAMPLE_TRANSACTION_ID: 401,
                       "6B1E0A3C5D7F4B2A9C8E": 401}  # fmt: skip
    read = api.vtex("GET", f"/transactions/{SUITE_TRANSACTION_ID}", headers={}).json()
    assert (read["status"], read["responses"]) == ("approved", {"testSuiteCase": "1"})


@pytest.fixture
def api_without_test_suite(anyio_backend: str, database_url: str) -> Iterator[InProcessApi]:
    yield from _start(database_url, test_suite_enabled=False)


def test_status_reads_need_credentials_when_test_suite_mode_is_off(
    api_without_test_suite: InProcessApi,
) -> None:
    api = api_without_test_suite
    operation = _operations(schema)["antifraudGetTransaction"]
    for transaction_id in (SUITE_TRANSACTION_ID, EXAMPLE_TRANSACTION_ID):
        case = operation.Case(path_parameters={"transactionId": transaction_id})
        response = api.send(case, headers={})
        case.validate_response(response, checks=CHECKS)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "missing-credentials"


# ----------------------------------------------------------------------------- edge values

LONG_ID = "A" * 255
# (operationId, name, path transactionId or None, body overrides or None, expected status).
BOUNDARY_VALUES: list[tuple[str, str, str | None, dict[str, Any] | None, int]] = [
    ("antifraudSendTransaction", "id of 255 characters", None, {"id": LONG_ID}, 200),
    ("antifraudSendTransaction", "id of 256 characters", None, {"id": "A" * 256}, 400),
    ("antifraudSendTransaction", "id with a slash", None, {"id": "a/b"}, 400),
    ("antifraudSendTransaction", "no id", None, {"id": ...}, 400),
    ("antifraudSendTransaction", "only an id", None, {"__only_id__": True}, 200),
    ("antifraudSendTransaction", "every field null", None, {"__nulls__": True}, 200),
    ("antifraudSendTransaction", "value as VTEX's schema types it", None, {"value": 10}, 200),
    ("antifraudSendTransaction", "value with 3 decimals", None, {"value": 150.605}, 200),
    ("antifraudSendTransaction", "negative value", None, {"value": -1}, 400),
    ("antifraudSendTransaction", "value of 18 integer digits", None, {"value": 1e18}, 400),
    ("antifraudSendTransaction", "value 1e400 (infinite)", None, {"value": "__1e400__"}, 400),
    ("antifraudSendTransaction", "value as a string", None, {"value": "150.6"}, 200),
    ("antifraudSendTransaction", "reference of 1001 characters", None,
     {"reference": "r" * 1001}, 400),
    ("antifraudSendTransaction", "hook of 2001 characters", None,
     {"hook": "https://hook.example.com/" + "h" * 1976}, 400),
    ("antifraudSendTransaction", "an unknown currency", None,
     {"payments.0.currencyIso4217": "XYZ"}, 200),
    ("antifraudSendTransaction", "a zoned transactionStartDate", None,
     {"transactionStartDate": "2025-06-15T18:08:23Z"}, 200),
    ("antifraudSendTransaction", "numeric categoryId", None, {"miniCart.items.0.categoryId": 111},
     200),
    ("antifraudSendTransaction", "fractional quantity", None, {"miniCart.items.0.quantity": 1.5},
     400),
    ("antifraudSendTransaction", "the string 'null' for a name", None,
     {"miniCart.buyer.firstName": "null"}, 200),
    ("antifraudSendTransaction", "NUL in the reference", None, {"reference": "a\x00b"}, 400),
    ("antifraudSendTransaction", "a hook off the allow-list", None,
     {"hook": "https://attacker.test/hook"}, 400),
    ("antifraudSendTransaction", "a plain http hook", None,
     {"hook": "http://hook.example.com/notify"}, 400),
    ("antifraudPreAnalysis", "a hook off the allow-list (never called here)", None,
     {"hook": "https://attacker.test/hook"}, 200),
    ("antifraudPreAnalysis", "negative payments, no value", None,
     {"value": ..., "payments.0.value": -5}, 400),
    ("antifraudUpdateTransaction", "the body names another id", EXAMPLE_TRANSACTION_ID,
     {"id": "OTHER"}, 400),
    ("antifraudUpdateTransaction", "a hook off the allow-list", EXAMPLE_TRANSACTION_ID,
     {"id": EXAMPLE_TRANSACTION_ID, "hook": "https://attacker.test/hook"}, 400),
    ("antifraudUpdateTransaction", "an unknown id is analysed", "NEW-BY-PUT",
     {"id": "NEW-BY-PUT"}, 200),
    ("antifraudGetTransaction", "id of 256 characters", "A" * 256, None, 400),
    ("antifraudGetTransaction", "id with an encoded slash", "a/b", None, 404),
    ("antifraudGetTransaction", "another merchant's id shape, unknown", "UNKNOWN", None, 404),
    ("antifraudStopTransaction", "an unknown id", "UNKNOWN", None, 200),
    ("antifraudStopTransaction", "id of 256 characters", "A" * 256, None, 400),
    ("antifraudStopTransaction", "id with an encoded slash", "a/b", None, 404),
]  # fmt: skip


def _with(body: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any] | bytes:
    """`body` with dotted-path overrides (`...` deletes); the markers build odd bodies."""
    if overrides.get("__only_id__"):
        return {"id": body["id"]}
    if overrides.get("__nulls__"):
        return {key: None for key in body} | {"id": body["id"]}
    if overrides.get("value") == "__1e400__":
        text = json.dumps({**body, "value": 0})
        return text.replace('"value": 0', '"value": 1e400', 1).encode()
    result = json.loads(json.dumps(body))
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node: Any = result
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is ...:
            node.pop(leaf, None)
        elif isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    return result


def test_boundary_values_conform(api: InProcessApi) -> None:
    """Values at the edges of what the service reads get the documented answer, never a 5xx."""
    operations = _operations(schema)
    problems = []
    for operation_id, name, path_id, overrides, status in BOUNDARY_VALUES:
        operation = operations[operation_id]
        path = {"transactionId": path_id} if path_id is not None else None
        if overrides is None:
            case = operation.Case(path_parameters=path)
            response = api.send(case)
        else:
            body = _with(order(uuid.uuid4().hex.upper()), overrides)
            if isinstance(body, bytes):
                case = operation.Case(path_parameters=path, body={}, media_type="application/json")
                url = ORIGIN + operation.path.format(**(path or {}))
                response = api.request(operation.method.upper(), url, content=body,
                                       headers={**api.credentials,
                                                "Content-Type": "application/json"})  # fmt: skip
            else:
                case = operation.Case(
                    path_parameters=path, body=body, media_type="application/json"
                )
                response = api.send(case)
        case.validate_response(response, checks=AUTHENTICATED_CHECKS)
        if response.status_code != status:
            problems.append(f"{operation_id} {name}: {response.status_code} {response.text}")
    assert not problems, "\n".join(problems)


DEEP_JSON = b'{"id": "DEEP", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
# Values that once broke the service (a 500 where the document says 400): a body nested beyond the
# parser's stack (now refused by `connector.http.read_model`), and values whose minor units
# overflow the 64-bit column (now refused by `connector.antifraud.facts`).
BREAKS: list[Any] = [
    pytest.param(
        "antifraudSendTransaction", DEEP_JSON,
        400,
        id="deeply nested JSON",
    ),
    pytest.param(
        "antifraudSendTransaction", {"value": 1e17}, 400,
        id="value of 17 integer digits",
    ),
    pytest.param(
        "antifraudUpdateTransaction", {"value": 1e17}, 400,
        id="value of 17 integer digits on an update",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("operation_id", "body", "status"), BREAKS)
def test_values_that_once_broke_the_service(
    api: InProcessApi, operation_id: str, body: bytes | dict[str, Any], status: int
) -> None:
    operation = _operations(schema)[operation_id]
    path = {"transactionId": EXAMPLE_TRANSACTION_ID} if operation.path_parameters else None
    if isinstance(body, bytes):
        case = operation.Case(path_parameters=path, body={}, media_type="application/json")
        response = api.request(
            operation.method.upper(),
            ORIGIN + operation.path,
            content=body,
            headers={**api.credentials, "Content-Type": "application/json"},
        )
    else:
        transaction_id = EXAMPLE_TRANSACTION_ID if path else uuid.uuid4().hex.upper()
        case = operation.Case(
            path_parameters=path, body={**order(transaction_id), **body},
            media_type="application/json",
        )  # fmt: skip
        response = api.send(case)
    assert response.status_code == status, response.text
    case.validate_response(response, checks=AUTHENTICATED_CHECKS)
