"""The fake core against `protocol/acquirer-api.yaml`, with Schemathesis, in-process.

`tests/test_acquirer_api_document.py` proves that the document and the wire models agree; this
proves that the fake, which the connector's own tests and `make demo` lean on, answers what the
document says:

* every operation's examples, coverage cases and fuzzed cases (positive and negative), sent with
  a valid `Api-Key`, get a documented status, content type and body, and never a 5xx (the
  document's 5XX means "the core failed", which the fake only does when a test injects it); a
  schema-valid request is never refused with 400;
* the fuzzing reaches the 200 branches, not only the 404s of unknown references: each test starts
  from a fake seeded (through its HTTP API) with approved, captured, refunded and pending
  authorizations, and about half of the fuzzed cases that name an authorization or an operation
  are sent to one of those; every operation must have answered at least one 200 by the end;
* explicit cases walk the documented answers of every operation (approved, denied, pending,
  succeeded, refused, replays, conflicts, inbound replies) through the same checks;
* every operation answers a missing or wrong key with the documented `401` and does nothing.

The fake's app is driven as in `tests/test_openapi_conformance.py`: one anyio blocking portal per
test serves every request through one `httpx.AsyncClient` on an `httpx.ASGITransport`;
Schemathesis only generates the requests (`Case.as_transport_kwargs`) and judges the answers
(`Case.validate_response`). Generation is seeded and derandomized, so a run is reproducible.

Not enabled on purpose: `negative_data_rejection`. The fake, like the wire models, ignores what
it does not need (unknown fields, an `amount` of `1.0`), which the document allows a core to do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from homologation.fakes.acquirer import FakeAcquirer, create_app
from tests.schemathesis_support import httpx_request, operations_by_id

Case: TypeAlias = "schemathesis.Case[Any]"
Operation: TypeAlias = "schemathesis.APIOperation[Any, Any, Any, Any]"

DOCUMENT = Path(__file__).resolve().parents[2] / "protocol" / "acquirer-api.yaml"
ORIGIN = "http://testserver"
API_KEY = "conformance-key"
VALID_KEY = {"Api-Key": API_KEY}
APPROVED_CARD = {"number": "4444333322221111", "expiryMonth": "12", "expiryYear": "2030"}

# What every test starts from, created through the fake's HTTP API (see `fake_core`).
AUTHORIZED = 10_000
APPROVED = "pay-seeded-approved"  # approved, nothing captured
CAPTURED = "pay-seeded-captured"  # approved, CAPTURE_AMOUNT captured, REFUND_AMOUNT refunded
PENDING = "pay-seeded-pending"  # a Pix authorization, pending
SEEDED_AUTHORIZATIONS = (APPROVED, CAPTURED, PENDING)
CAPTURE = f"{CAPTURED}:settlement:1"
REFUND = f"{CAPTURED}:refund:1"
REFUSED_VOID = f"{CAPTURED}:cancellation:1"  # refused: already-captured
SEEDED_OPERATIONS = (CAPTURE, REFUND, REFUSED_VOID)
CAPTURE_AMOUNT = 4_000
REFUND_AMOUNT = 1_000
INBOUND_ACTIONS = ("status", "decide")

SEED = 20261128
MAX_EXAMPLES = 30


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # The key is not data to fuzz: every generated request carries the valid one, and
                # test_a_missing_or_wrong_key_is_the_documented_401 covers the others.
                "with-security-parameters": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
            },
            "checks": {
                # A request the document allows is never refused as invalid. 404 (an unknown
                # reference) and 409 (a fuzzed reference that names another request) are answers
                # the document gives to schema-valid requests; 401 never happens with the key.
                "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409"]},
            },
        }
    )


schema = schemathesis.openapi.from_path(DOCUMENT, config=_config())


def _operations() -> dict[str, Operation]:
    return operations_by_id(schema)


def _operation_id(case: Case) -> str:
    return str(case.operation.definition.raw["operationId"])


# ----------------------------------------------------------------------------- generation hooks


def _seeded(case: Case, choice: tuple[str, str, str] | None) -> Case:
    """`case` aimed at a seeded authorization or operation (`choice`), or left as generated."""
    if choice is None:
        return case
    authorization, operation, action = choice
    parameters = dict(case.path_parameters)
    if "reference" in parameters:
        is_operation = case.operation.path.startswith("/operations/")
        parameters["reference"] = operation if is_operation else authorization
    if "action" in parameters:
        parameters["action"] = action
    case.path_parameters = parameters
    return case


SEEDED_CHOICES = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(SEEDED_AUTHORIZATIONS),
        st.sampled_from(SEEDED_OPERATIONS),
        st.sampled_from(INBOUND_ACTIONS),
    ),
)


@schema.hook("flatmap_case")
def _half_on_seeded_records(
    context: schemathesis.HookContext, case: Case
) -> st.SearchStrategy[Case]:
    """A random reference only reaches the 404 branch; a seeded one reaches the ledger."""
    if not case.path_parameters:
        return st.just(case)
    return SEEDED_CHOICES.map(functools.partial(_seeded, case))


# ----------------------------------------------------------------------------- checks


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    """The document's 5XX is "the core failed"; the fake fails only when a test injects it."""
    if response.status_code >= 500:
        raise AssertionError(
            f"{response.status_code} on {case.operation.label}: {response.text[:500]}"
        )


CHECKS: list[schemathesis.CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    unsupported_method,  # a method the document does not list: 405 with `Allow`
]


# ----------------------------------------------------------------------------- the fake


@dataclass
class Core:
    """The fake's ASGI app behind one httpx client, callable from the synchronous test."""

    fake: FakeAcquirer
    portal: BlockingPortal
    client: httpx.AsyncClient
    # (operationId, status) of every Schemathesis case sent, for the coverage assertions.
    seen: set[tuple[str, int]] = field(default_factory=set)
    failed: bool = False

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self.client.request, method, url, **kwargs)
        response: httpx.Response = self.portal.call(call)
        return response

    def post(self, url: str, body: Any) -> httpx.Response:
        return self.request("POST", url, headers=VALID_KEY, json=body)

    def send(self, case: Case, headers: Mapping[str, str] = VALID_KEY) -> httpx.Response:
        """Sends a Schemathesis case with `headers` added (by default, the valid key)."""
        method, url, arguments = httpx_request(case, ORIGIN, headers)
        response = self.request(method, url, **arguments)
        self.seen.add((_operation_id(case), response.status_code))
        return response

    def check(self, case: Case, headers: Mapping[str, str] = VALID_KEY) -> httpx.Response:
        """Sends `case` and judges the answer with every check."""
        response = self.send(case, headers)
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException:
            self.failed = True
            raise
        return response


@pytest.fixture
def fake_core() -> Iterator[Core]:
    """A fresh fake, seeded with the records of SEEDED_AUTHORIZATIONS and SEEDED_OPERATIONS."""
    # A pending authorization stays pending for the whole test: the fake decides it only after
    # `async_decision_seconds`, and a slow run must not change which branch a case reaches.
    fake = FakeAcquirer(
        api_key=API_KEY, public_url="https://core.example", async_decision_seconds=3600
    )
    # raise_app_exceptions=False: an unhandled exception must come back as a 500, which the
    # checks then report.
    transport = httpx.ASGITransport(app=create_app(fake), raise_app_exceptions=False)
    with (
        start_blocking_portal(name="fake-core") as portal,
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        core = Core(fake, portal, client)
        for reference, extra in (
            (APPROVED, {"card": APPROVED_CARD}),
            (CAPTURED, {"card": APPROVED_CARD}),
            (PENDING, {"flow": "pix", "paymentMethod": "Pix"}),
        ):
            body = {"reference": reference, "amount": AUTHORIZED, "currency": "BRL", **extra}
            answer = core.post("/authorizations", body)
            assert answer.status_code == 200, answer.text
        for kind, reference, amount, status in (
            ("captures", CAPTURE, CAPTURE_AMOUNT, "succeeded"),
            ("refunds", REFUND, REFUND_AMOUNT, "succeeded"),
            ("voids", REFUSED_VOID, AUTHORIZED, "refused"),
        ):
            body = {"reference": reference, "amount": amount}
            answer = core.post(f"/authorizations/{CAPTURED}/{kind}", body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == status, answer.text
        statuses = {ref: fake.authorizations[ref].outcome.status for ref in SEEDED_AUTHORIZATIONS}
        assert statuses == {APPROVED: "approved", CAPTURED: "approved", PENDING: "pending"}
        yield core


@pytest.fixture
def fuzzed_core(fake_core: Core) -> Iterator[Core]:
    """`fake_core`, and afterwards: the run must have reached the operation's 200 branch."""
    yield fake_core
    if fake_core.failed or not fake_core.seen:
        return  # the failure is what to report
    (operation_id,) = {operation_id for operation_id, _ in fake_core.seen}
    statuses = sorted(status for _, status in fake_core.seen)
    assert 200 in statuses, f"{operation_id} never answered 200 (only {statuses})"


# ----------------------------------------------------------------------------- fuzzing


@schema.parametrize()
@settings(
    deadline=None,
    database=None,
    derandomize=True,
    print_blob=False,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        # One fake per operation on purpose: the examples share it, and none needs a clean one.
        HealthCheck.function_scoped_fixture,
    ],
)
def test_the_fake_answers_what_the_document_says(case: Case, fuzzed_core: Core) -> None:
    fuzzed_core.check(case)


# ----------------------------------------------------------------------------- explicit cases


def _case(
    operation_id: str, path_parameters: dict[str, str] | None = None, body: Any = None
) -> Case:
    operation = _operations()[operation_id]
    if body is None:
        return operation.Case(path_parameters=path_parameters)
    return operation.Case(path_parameters=path_parameters, body=body, media_type="application/json")


def _authorization(reference: str, amount: int = AUTHORIZED, **extra: Any) -> dict[str, Any]:
    return {"reference": reference, "amount": amount, "currency": "BRL", **extra}


def _on(reference: str, action: str | None = None) -> dict[str, str]:
    """Path parameters: an authorization's or an operation's reference, and an inbound action."""
    parameters = {"reference": reference}
    if action is not None:
        parameters["action"] = action
    return parameters


# (operationId, path parameters, body, status, what the body holds)
DOCUMENTED_ANSWERS: list[Any] = [
    pytest.param(
        "createAuthorization",
        None,
        _authorization("pay-new", card=APPROVED_CARD),
        200,
        {"reference": "pay-new", "status": "approved", "code": "00"},
        id="authorize: approved",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization(APPROVED, card=APPROVED_CARD),
        200,
        {"reference": APPROVED, "status": "approved"},
        id="authorize: a replay",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization("pay-poor", card={**APPROVED_CARD, "number": "4444333322221112"}),
        200,
        {"status": "denied", "id": None, "code": "51"},
        id="authorize: denied",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization("pay-no-card"),
        200,
        {"status": "denied", "code": "missing-card"},
        id="authorize: a card flow without a card",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization("pay-boleto", flow="bank_invoice", card=None, installments=None),
        200,
        {"status": "pending", "id": None},
        id="authorize: a pending bank invoice",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization("pay-app", flow="payment_app"),
        200,
        {"status": "pending"},
        id="authorize: a pending payment app",
    ),
    pytest.param(
        "createAuthorization",
        None,
        _authorization(APPROVED, amount=1),
        409,
        {"code": "reference-conflict"},
        id="authorize: a reference with another amount",
    ),
    pytest.param(
        "createAuthorization",
        None,
        {"reference": "pay-x", "amount": -1, "currency": "BRL"},
        400,
        {"code": "invalid-request"},
        id="authorize: a negative amount",
    ),
    pytest.param(
        "getAuthorization",
        _on(APPROVED),
        None,
        200,
        {"reference": APPROVED, "status": "approved"},
        id="get: approved",
    ),
    pytest.param(
        "getAuthorization",
        _on(PENDING),
        None,
        200,
        {"reference": PENDING, "status": "pending"},
        id="get: pending",
    ),
    pytest.param(
        "getAuthorization",
        _on("pay-unknown"),
        None,
        404,
        {"code": "authorization-not-found"},
        id="get: unknown",
    ),
    pytest.param(
        "createCapture",
        _on(APPROVED),
        {"reference": f"{APPROVED}:settlement:1", "amount": 2500},
        200,
        {"status": "succeeded", "amount": 2500},
        id="capture: succeeded",
    ),
    pytest.param(
        "createCapture",
        _on(CAPTURED),
        {"reference": f"{CAPTURED}:settlement:2", "amount": 9000},
        200,
        {"status": "refused", "code": "exceeds-authorized"},
        id="capture: beyond authorized",
    ),
    pytest.param(
        "createCapture",
        _on(PENDING),
        {"reference": f"{PENDING}:settlement:1", "amount": 1},
        200,
        {"status": "refused", "code": "not-approved"},
        id="capture: pending",
    ),
    pytest.param(
        "createCapture",
        _on(CAPTURED),
        {"reference": CAPTURE, "amount": CAPTURE_AMOUNT},
        200,
        {"reference": CAPTURE, "status": "succeeded"},
        id="capture: a replay",
    ),
    pytest.param(
        "createCapture",
        _on(APPROVED),
        {"reference": CAPTURE, "amount": CAPTURE_AMOUNT},
        409,
        {"code": "reference-conflict"},
        id="capture: a reference of another authorization",
    ),
    pytest.param(
        "createCapture",
        _on("pay-unknown"),
        {"reference": "op-1", "amount": 1},
        404,
        {"code": "authorization-not-found"},
        id="capture: unknown authorization",
    ),
    pytest.param(
        "createCapture",
        _on(APPROVED),
        {"reference": "op 1", "amount": 1},
        400,
        {"code": "invalid-request"},
        id="capture: a reference off the pattern",
    ),
    pytest.param(
        "createRefund",
        _on(CAPTURED),
        {"reference": f"{CAPTURED}:refund:2", "amount": 3000},
        200,
        {"status": "succeeded", "amount": 3000},
        id="refund: succeeded",
    ),
    pytest.param(
        "createRefund",
        _on(CAPTURED),
        {"reference": f"{CAPTURED}:refund:3", "amount": 3001},
        200,
        {"status": "refused", "code": "exceeds-captured"},
        id="refund: beyond captured",
    ),
    pytest.param(
        "createRefund",
        _on(CAPTURED),
        {"reference": CAPTURE, "amount": CAPTURE_AMOUNT},
        409,
        {"code": "reference-conflict"},
        id="refund: a capture's reference",
    ),
    pytest.param(
        "createVoid",
        _on(PENDING),
        {"reference": f"{PENDING}:cancellation:1", "amount": AUTHORIZED},
        200,
        {"status": "succeeded"},
        id="void: pending",
    ),
    pytest.param(
        "createVoid",
        _on(APPROVED),
        {"reference": f"{APPROVED}:cancellation:1", "amount": AUTHORIZED},
        200,
        {"status": "succeeded"},
        id="void: approved, nothing captured",
    ),
    pytest.param(
        "createVoid",
        _on(CAPTURED),
        {"reference": f"{CAPTURED}:cancellation:2", "amount": AUTHORIZED},
        200,
        {"status": "refused", "code": "already-captured"},
        id="void: captured",
    ),
    pytest.param(
        "getOperation",
        _on(CAPTURE),
        None,
        200,
        {"reference": CAPTURE, "status": "succeeded", "amount": CAPTURE_AMOUNT},
        id="get operation: a capture",
    ),
    pytest.param(
        "getOperation",
        _on(REFUND),
        None,
        200,
        {"reference": REFUND, "status": "succeeded", "amount": REFUND_AMOUNT},
        id="get operation: a refund",
    ),
    pytest.param(
        "getOperation",
        _on(REFUSED_VOID),
        None,
        200,
        {"reference": REFUSED_VOID, "status": "refused", "code": "already-captured"},
        id="get operation: a refused void",
    ),
    pytest.param(
        "getOperation",
        _on(f"{CAPTURED}:settlement:9"),
        None,
        404,
        {"code": "operation-not-found"},
        id="get operation: unknown",
    ),
    pytest.param(
        "handleInbound",
        _on(CAPTURED, "status"),
        {"body": ""},
        200,
        {"statusCode": 200, "authorization": None},
        id="inbound: status",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "decide"),
        {"body": '{"decision": "approve"}'},
        200,
        {"statusCode": 200, "authorization": {"reference": PENDING, "status": "approved"}},
        id="inbound: a pending authorization approved",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "decide"),
        {"body": '{"decision": "deny"}'},
        200,
        {"statusCode": 200, "authorization": {"reference": PENDING, "status": "denied"}},
        id="inbound: a pending authorization denied",
    ),
    pytest.param(
        "handleInbound",
        _on(APPROVED, "decide"),
        {"body": '{"decision": "approve"}'},
        200,
        {"statusCode": 409},
        id="inbound: decided already",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "decide"),
        {"body": "not json"},
        200,
        {"statusCode": 400},
        id="inbound: a caller's bad request",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "status"),
        {},
        200,
        {"statusCode": 200},
        id="inbound: no body field",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "refresh"),
        {"body": ""},
        404,
        {"code": "unknown-action"},
        id="inbound: unknown action",
    ),
    pytest.param(
        "handleInbound",
        _on("pay-unknown", "status"),
        {"body": ""},
        404,
        {"code": "authorization-not-found"},
        id="inbound: unknown authorization",
    ),
    pytest.param(
        "handleInbound",
        _on(PENDING, "status"),
        {"body": 1},
        400,
        {"code": "invalid-request"},
        id="inbound: a body that is not a string",
    ),
]


def _holds(body: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(body, dict) and all(
            key in body and _holds(body[key], value) for key, value in expected.items()
        )
    return bool(body == expected)


@pytest.mark.parametrize(
    ("operation_id", "path_parameters", "body", "status", "expected"), DOCUMENTED_ANSWERS
)
def test_every_documented_answer_conforms(
    fake_core: Core,
    operation_id: str,
    path_parameters: dict[str, str] | None,
    body: Any,
    status: int,
    expected: dict[str, Any],
) -> None:
    response = fake_core.check(_case(operation_id, path_parameters, body))
    assert response.status_code == status, response.text
    assert _holds(response.json(), expected), response.text
    if operation_id in ("createAuthorization", "getAuthorization") and status == 200:
        answer = response.json()
        assert (answer["id"] is not None) == (answer["status"] == "approved"), answer
        # A pending authorization of a flow other than `card` carries what the shopper pays.
        if answer["status"] == "pending":
            assert answer["instrument"]["paymentUrl"], answer


def test_a_reference_arrives_percent_encoded(fake_core: Core) -> None:
    """`:` travels as `%3A` in a path; the fake decodes the segment before it looks it up."""
    response = fake_core.request("GET", f"/operations/{quote(CAPTURE, safe='')}", headers=VALID_KEY)
    assert "%3A" in str(response.request.url)
    case = _case("getOperation", _on(CAPTURE))
    case.validate_response(response, checks=CHECKS)
    assert response.status_code == 200, response.text
    assert response.json()["reference"] == CAPTURE


def test_a_voided_pending_authorization_is_denied_for_good(fake_core: Core) -> None:
    void = _case(
        "createVoid", _on(PENDING), {"reference": f"{PENDING}:cancellation:1", "amount": AUTHORIZED}
    )
    assert fake_core.check(void).json()["status"] == "succeeded"
    decide = _case("handleInbound", _on(PENDING, "decide"), {"body": '{"decision": "approve"}'})
    assert fake_core.check(decide).json()["statusCode"] == 409
    answer = fake_core.check(_case("getAuthorization", _on(PENDING))).json()
    assert (answer["status"], answer["code"], answer["id"]) == ("denied", "voided", None), answer


# ----------------------------------------------------------------------------- authentication


def _accepted_request(operation_id: str) -> Case:
    """A request of the operation that the fake accepts (with an effect) given the valid key."""
    requests: dict[str, tuple[dict[str, str] | None, Any]] = {
        "createAuthorization": (None, _authorization("pay-keyless", card=APPROVED_CARD)),
        "getAuthorization": (_on(APPROVED), None),
        "createCapture": (_on(APPROVED), {"reference": f"{APPROVED}:settlement:k", "amount": 1}),
        "createRefund": (_on(CAPTURED), {"reference": f"{CAPTURED}:refund:k", "amount": 1}),
        "createVoid": (_on(PENDING), {"reference": f"{PENDING}:cancellation:k", "amount": 1}),
        "getOperation": (_on(CAPTURE), None),
        "handleInbound": (_on(PENDING, "decide"), {"body": '{"decision": "approve"}'}),
    }
    path_parameters, body = requests[operation_id]
    return _case(operation_id, path_parameters, body)


WRONG_KEYS: dict[str, dict[str, str]] = {
    "no key": {},
    "an empty key": {"Api-Key": ""},
    "a wrong key": {"Api-Key": "wrong"},
    "the key in another case": {"Api-Key": API_KEY.upper()},
    "the key with a suffix": {"Api-Key": API_KEY + "x"},
    "a prefix of the key": {"Api-Key": API_KEY[:-1]},
    "the key as a bearer token": {"Authorization": f"Bearer {API_KEY}"},
    "the key in another header": {"X-Api-Key": API_KEY},
    "the Secure Proxy's header, unstripped": {"X-PROVIDER-Forward-Api-Key": API_KEY},
}


@pytest.mark.parametrize("operation_id", sorted(_operations()))
def test_a_missing_or_wrong_key_is_the_documented_401(fake_core: Core, operation_id: str) -> None:
    raw = _operations()[operation_id].definition.raw
    assert raw.get("security", schema.raw_schema["security"]) == [{"ApiKey": []}], operation_id
    case = _accepted_request(operation_id)
    before = (
        list(fake_core.fake.effects),
        {ref: record.outcome for ref, record in fake_core.fake.authorizations.items()},
        set(fake_core.fake.operations),
    )
    for name, headers in WRONG_KEYS.items():
        response = fake_core.check(case, headers=headers)
        assert response.status_code == 401, (name, response.text)
        assert response.json()["code"] == "unauthorized", (name, response.text)
    after = (
        list(fake_core.fake.effects),
        {ref: record.outcome for ref, record in fake_core.fake.authorizations.items()},
        set(fake_core.fake.operations),
    )
    assert after == before, "a request without the key had an effect"

    # The positive control: the same request with the key (header names are case-insensitive).
    response = fake_core.check(case, headers={"api-key": API_KEY})
    assert response.status_code == 200, response.text
