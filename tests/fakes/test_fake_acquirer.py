"""The fake acquirer over real HTTP: the acquirer API's rules, and the faults tests rely on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from homologation.fakes.acquirer import FakeAcquirer, Fault, create_app
from homologation.fakes.server import serve
from tests.fakes import Swappable, eventually

API_KEY = "fake-core-key"
APPROVED = "4444333322221111"
DENIED = "4444333322221112"
LATER_APPROVED = "4222222222222224"
LATER_DENIED = "4222222222222225"
DECISION_SECONDS = 0.2


@dataclass
class Core:
    fake: FakeAcquirer
    http: httpx.AsyncClient

    async def authorize(
        self, reference: str, number: str | None = APPROVED, amount: int = 10000, **extra: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"reference": reference, "amount": amount, "currency": "BRL"}
        if number is not None:
            body["card"] = {"number": number, "holder": "Ana Test", "csc": "123"}
        return await self.http.post("/authorizations", json={**body, **extra})

    async def operate(
        self, kind: str, authorization: str, reference: str, amount: int
    ) -> httpx.Response:
        return await self.http.post(
            f"/authorizations/{authorization}/{kind}s",
            json={"reference": reference, "amount": amount},
        )

    async def inbound(self, authorization: str, action: str, body: str = "") -> httpx.Response:
        return await self.http.post(
            f"/authorizations/{authorization}/inbound/{action}", json={"body": body}
        )


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # module-wide, so that one server serves every test of the module


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[Swappable, str]]:
    app = Swappable()
    async with serve(app) as url:
        yield app, url


@pytest.fixture
async def core(server: tuple[Swappable, str]) -> AsyncIterator[Core]:
    app, url = server
    fake = FakeAcquirer(
        api_key=API_KEY,
        public_url="https://core.example",
        async_decision_seconds=DECISION_SECONDS,
    )
    app.app = create_app(fake)
    async with httpx.AsyncClient(base_url=url, headers={"Api-Key": API_KEY}) as http:
        try:
            yield Core(fake, http)
        finally:
            fake.release()  # wake any injected sleep still holding a request


# ----------------------------------------------------------------------------- the API


@pytest.mark.parametrize("api_key", [None, "wrong-key"])
async def test_a_request_without_the_right_key_is_refused_and_does_nothing(
    core: Core, api_key: str | None
) -> None:
    headers = {} if api_key is None else {"Api-Key": api_key}
    body = {"reference": "a-1", "amount": 100, "currency": "BRL", "card": {"number": APPROVED}}
    async with httpx.AsyncClient(base_url=str(core.http.base_url), headers=headers) as http:
        response = await http.post("/authorizations", json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert core.fake.effects == []
    assert (await core.http.get("/authorizations/a-1")).status_code == 404


@pytest.mark.parametrize(
    ("number", "amount", "status", "code"),
    [
        (APPROVED, 10000, "approved", "00"),
        ("4111111111111111", 10000, "approved", "00"),  # any valid number
        (DENIED, 10000, "denied", "51"),
        ("4111111111111112", 10000, "denied", "invalid-card-number"),
        ("4111111111111111", 10051, "denied", "insufficient-funds"),
        ("#vtex#token#0badcafe#number#", 10000, "denied", "tokenized-card-data"),
        (None, 10000, "denied", "missing-card"),
    ],
)
async def test_cards_are_decided_by_their_number_and_amount(
    core: Core, number: str | None, amount: int, status: str, code: str
) -> None:
    response = await core.authorize("a-1", number, amount)
    answer = response.json()
    assert response.status_code == 200
    assert (answer["status"], answer["code"]) == (status, code)
    if status == "approved":
        assert answer["id"].startswith("AUT-") and answer["nsu"].startswith("NSU-")
    else:
        assert answer["id"] is None


@pytest.mark.parametrize(
    ("number", "status"), [(LATER_APPROVED, "approved"), (LATER_DENIED, "denied")]
)
async def test_a_pending_test_card_is_decided_after_the_delay(
    core: Core, number: str, status: str
) -> None:
    first = (await core.authorize("a-1", number)).json()
    assert first["status"] == "pending" and first["id"] is None
    assert (await core.http.get("/authorizations/a-1")).json()["status"] == "pending"
    await asyncio.sleep(DECISION_SECONDS + 0.05)
    decided = (await core.http.get("/authorizations/a-1")).json()
    assert decided["status"] == status
    assert (decided["id"] is not None) == (status == "approved")


@pytest.mark.parametrize(
    ("flow", "fields"),
    [
        ("redirect", {"paymentUrl", "redirectUrl"}),
        ("pix", {"paymentUrl"}),
        (
            "bank_invoice",
            {
                "paymentUrl",
                "identificationNumber",
                "identificationNumberFormatted",
                "barCodeImageType",
                "barCodeImageNumber",
            },
        ),
        ("payment_app", {"paymentUrl", "paymentAppData"}),
    ],
)
async def test_other_flows_are_pending_with_an_instrument_then_approved(
    core: Core, flow: str, fields: set[str]
) -> None:
    answer = (await core.authorize("a-1", None, flow=flow)).json()
    assert answer["status"] == "pending"
    instrument = {name for name, value in answer["instrument"].items() if value is not None}
    assert instrument == fields
    assert answer["instrument"]["paymentUrl"] == "https://core.example/pay/a-1"
    if flow == "bank_invoice":
        assert len(answer["instrument"]["identificationNumber"]) == 47
        assert len(answer["instrument"]["barCodeImageNumber"]) == 44
    if flow == "payment_app":
        payload = json.loads(answer["instrument"]["paymentAppData"]["payload"])
        assert payload == {"paymentUrl": "https://core.example/pay/a-1"}
    await asyncio.sleep(DECISION_SECONDS + 0.05)
    assert (await core.http.get("/authorizations/a-1")).json()["status"] == "approved"


async def test_a_repeated_reference_is_a_replay_of_the_first_answer(core: Core) -> None:
    first = (await core.authorize("a-1")).json()
    again = (await core.authorize("a-1")).json()
    assert again == first and first["id"].startswith("AUT-")
    assert core.fake.effect_count("authorize") == 1


async def test_without_dedupe_a_repeated_reference_acts_again(core: Core) -> None:
    core.fake.dedupe = False
    await core.authorize("a-1")
    await core.authorize("a-1")
    await core.operate("capture", "a-1", "c-1", 4000)
    await core.operate("capture", "a-1", "c-1", 4000)
    assert core.fake.effect_count("authorize") == 2
    assert core.fake.effect_count("capture") == 2


async def test_a_reference_reused_with_another_amount_or_currency_is_a_conflict(
    core: Core,
) -> None:
    await core.authorize("a-1", amount=10000)
    other_amount = await core.authorize("a-1", amount=9000)
    other_currency = await core.authorize("a-1", currency="USD")
    assert other_amount.status_code == other_currency.status_code == 409
    assert other_amount.json()["code"] == "reference-conflict"
    assert core.fake.effect_count("authorize") == 1


async def test_unknown_references_are_404_in_the_apis_error_shape(core: Core) -> None:
    authorization = await core.http.get("/authorizations/nope")
    operation = await core.http.get("/operations/nope")
    capture = await core.operate("capture", "nope", "c-1", 100)
    assert authorization.status_code == operation.status_code == capture.status_code == 404
    assert authorization.json()["code"] == capture.json()["code"] == "authorization-not-found"
    assert operation.json()["code"] == "operation-not-found"
    assert set(authorization.json()) == {"code", "message"}


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        '{"reference": "a-1", "currency": "BRL"}',
        '{"reference": "a-1", "amount": -1, "currency": "BRL"}',
        '{"reference": "a 1", "amount": 1, "currency": "BRL"}',
    ],
)
async def test_an_invalid_body_is_400_never_500(core: Core, body: str) -> None:
    response = await core.http.post(
        "/authorizations", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid-request"


async def test_the_ledger_refuses_what_it_must(core: Core) -> None:
    await core.authorize("a-1", amount=10000)
    await core.authorize("denied", DENIED)

    async def outcome(kind: str, authorization: str, reference: str, amount: int) -> Any:
        answer = (await core.operate(kind, authorization, reference, amount)).json()
        return answer["status"], answer["code"], answer["id"] is not None

    assert await outcome("capture", "denied", "c-0", 100) == ("refused", "not-approved", False)
    assert await outcome("capture", "a-1", "c-1", 6000) == ("succeeded", None, True)
    assert await outcome("capture", "a-1", "c-2", 5000) == ("refused", "exceeds-authorized", False)
    assert await outcome("capture", "a-1", "c-3", 4000) == ("succeeded", None, True)
    assert await outcome("refund", "a-1", "r-1", 10001) == ("refused", "exceeds-captured", False)
    assert await outcome("refund", "a-1", "r-2", 10000) == ("succeeded", None, True)
    assert await outcome("void", "a-1", "v-1", 10000) == ("refused", "already-captured", False)
    assert [(e.kind, e.reference) for e in core.fake.effects[2:]] == [
        ("capture", "c-1"),
        ("capture", "c-3"),
        ("refund", "r-2"),
    ]


async def test_a_voided_authorization_cannot_be_captured(core: Core) -> None:
    await core.authorize("a-1")
    voided = (await core.operate("void", "a-1", "v-1", 10000)).json()
    capture = (await core.operate("capture", "a-1", "c-1", 100)).json()
    assert voided["status"] == "succeeded" and voided["id"].startswith("VOI-")
    assert (capture["status"], capture["code"]) == ("refused", "voided")
    assert core.fake.effect_count("void") == 1 and core.fake.effect_count("capture") == 0


async def test_an_operation_reference_is_a_replay_and_can_be_read(core: Core) -> None:
    await core.authorize("a-1")
    first = (await core.operate("capture", "a-1", "c-1", 4000)).json()
    again = (await core.operate("capture", "a-1", "c-1", 4000)).json()
    read = (await core.http.get("/operations/c-1")).json()
    conflict = await core.operate("refund", "a-1", "c-1", 4000)
    assert first == again == read and first["id"].startswith("CAP-")
    assert conflict.status_code == 409
    assert core.fake.effect_count("capture") == 1


async def test_a_void_of_a_pending_authorization_denies_it_for_good(core: Core) -> None:
    await core.authorize("a-1", LATER_APPROVED)
    voided = (await core.operate("void", "a-1", "v-1", 10000)).json()
    assert voided["status"] == "succeeded"
    await asyncio.sleep(DECISION_SECONDS + 0.05)
    answer = (await core.http.get("/authorizations/a-1")).json()
    assert (answer["status"], answer["code"]) == ("denied", "voided")


async def test_inbound_calls_read_and_decide_a_pending_authorization(core: Core) -> None:
    core.fake.async_decision_seconds = 60
    await core.authorize("a-1", None, flow="pix")
    status = (await core.inbound("a-1", "status")).json()
    bad = (await core.inbound("a-1", "decide", '{"decision": "maybe"}')).json()
    decided = (await core.inbound("a-1", "decide", '{"decision": "approve"}')).json()
    again = (await core.inbound("a-1", "decide", '{"decision": "deny"}')).json()

    assert (status["statusCode"], json.loads(status["content"])) == (200, {"status": "pending"})
    assert status["authorization"] is None
    assert bad["statusCode"] == 400 and bad["authorization"] is None
    assert decided["statusCode"] == 200 and json.loads(decided["content"])["status"] == "approved"
    assert decided["authorization"]["status"] == "approved" and decided["authorization"]["id"]
    assert again["statusCode"] == 409 and again["authorization"] is None
    assert (await core.http.get("/authorizations/a-1")).json()["status"] == "approved"


async def test_inbound_calls_to_unknown_actions_or_authorizations_are_404(core: Core) -> None:
    await core.authorize("a-1")
    action = await core.inbound("a-1", "refund-everything")
    authorization = await core.inbound("nope", "status")
    assert action.status_code == authorization.status_code == 404
    assert action.json()["code"] == "unknown-action"
    assert authorization.json()["code"] == "authorization-not-found"


async def test_every_request_is_recorded_with_lower_cased_headers(core: Core) -> None:
    await core.authorize("a-1")
    await core.http.get("/authorizations/a-1")
    [post, get] = core.fake.requests
    assert (post.method, post.path, get.method, get.path) == (
        "POST",
        "/authorizations",
        "GET",
        "/authorizations/a-1",
    )
    assert post.headers["api-key"] == API_KEY
    assert json.loads(post.body)["card"]["number"] == APPROVED


# ----------------------------------------------------------------------------- faults


async def test_a_status_before_answers_without_acting_once(core: Core) -> None:
    core.fake.inject(Fault("authorize", status_before=503))
    failed = await core.authorize("a-1")
    assert failed.status_code == 503 and failed.json()["code"] == "injected-fault"
    assert core.fake.effect_count("authorize") == 0
    assert (await core.http.get("/authorizations/a-1")).status_code == 404
    assert (await core.authorize("a-1")).status_code == 200  # times=1: spent
    assert core.fake.effect_count("authorize") == 1


async def test_a_status_after_acts_then_fails(core: Core) -> None:
    await core.authorize("a-1")
    core.fake.inject(Fault("capture", status_after=502))
    failed = await core.operate("capture", "a-1", "c-1", 100)
    assert failed.status_code == 502
    assert core.fake.effect_count("capture") == 1
    assert (await core.http.get("/operations/c-1")).json()["status"] == "succeeded"


async def test_faults_match_their_operation_or_any_and_last_until_reset(core: Core) -> None:
    core.fake.inject(Fault("query", status_before=500, times=None))
    assert (await core.authorize("a-1")).status_code == 200
    assert (await core.http.get("/authorizations/a-1")).status_code == 500
    assert (await core.http.get("/authorizations/a-1")).status_code == 500
    core.fake.reset_faults()
    core.fake.inject(Fault("any", status_before=503, times=2))
    assert (await core.http.get("/operations/c-1")).status_code == 503
    assert (await core.inbound("a-1", "status")).status_code == 503
    assert (await core.http.get("/authorizations/a-1")).status_code == 200


def test_an_unknown_fault_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="operation must be one of"):
        Fault("authorise")


async def test_a_latency_before_still_acts_after_the_client_gave_up(core: Core) -> None:
    core.fake.inject(Fault("authorize", latency_before=0.4))
    with pytest.raises(httpx.ReadTimeout):
        await core.http.post(
            "/authorizations",
            json={"reference": "a-1", "amount": 100, "currency": "BRL", "flow": "pix"},
            timeout=0.1,
        )
    assert core.fake.effect_count("authorize") == 0  # the core has not seen it yet
    await eventually(lambda: core.fake.effect_count("authorize") == 1)


async def test_a_latency_after_has_acted_before_the_client_gives_up(core: Core) -> None:
    core.fake.inject(Fault("authorize", latency_after=5))
    with pytest.raises(httpx.ReadTimeout):
        await core.http.post(
            "/authorizations",
            json={"reference": "a-1", "amount": 100, "currency": "BRL", "flow": "pix"},
            timeout=0.2,
        )
    assert core.fake.effect_count("authorize") == 1


async def test_release_ends_a_long_latency_at_once(core: Core) -> None:
    core.fake.inject(Fault("query", latency_before=30, latency_after=30))
    started = time.monotonic()
    request = asyncio.create_task(core.http.get("/authorizations/a-1"))
    await asyncio.sleep(0.1)
    core.fake.release()
    response = await request
    assert response.status_code == 404 and time.monotonic() - started < 1


async def test_the_control_endpoints_inject_reset_and_count(core: Core) -> None:
    fault = {"operation": "authorize", "status_before": 503, "times": None}
    assert (await core.http.post("/_control/faults", json=fault)).status_code == 204
    assert (await core.authorize("a-1")).status_code == 503
    assert (await core.http.delete("/_control/faults")).status_code == 204
    assert (await core.authorize("a-1")).status_code == 200
    await core.operate("capture", "a-1", "c-1", 100)
    effects = (await core.http.get("/_control/effects")).json()
    assert effects == {"authorize": 1, "capture": 1, "refund": 0, "void": 0}


async def test_the_control_endpoints_need_the_key_and_a_valid_fault(core: Core) -> None:
    bad = await core.http.post("/_control/faults", json={"operation": "authorise"})
    async with httpx.AsyncClient(base_url=str(core.http.base_url)) as anonymous:
        unauthorized = await anonymous.post("/_control/faults", json={"operation": "any"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid-request"
    assert unauthorized.status_code == 401
    assert core.fake.faults == []
