"""The fake core against `protocol/acquirer-api.yaml`, with Schemathesis, in-process.

`tests/test_acquirer_api_document.py` proves that the document and the wire models agree; this
proves that the fake, which the connector's own tests and `make demo` lean on, answers what the
document says: every operation's examples, coverage cases and fuzzed cases get a documented
status, content type and body, and never a 5xx (the document's 5XX means "the core failed",
which the fake only does when a test injects it). About half of the cases that name an
authorization or an operation are sent to ones that exist, so that the 200 branches are judged
too, not only the 404s.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from requests.utils import requote_uri
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from homologation.fakes.acquirer import FakeAcquirer, create_app

Case: TypeAlias = "schemathesis.Case[Any]"

DOCUMENT = Path(__file__).resolve().parents[2] / "protocol" / "acquirer-api.yaml"
ORIGIN = "http://testserver"
API_KEY = "conformance-key"
# An approved authorization, a capture of part of it and a pending one, created before each test.
SEEDED_AUTHORIZATIONS = ("pay-seeded-approved", "pay-seeded-pending")
SEEDED_OPERATION = "pay-seeded-approved:settlement:1"


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": 20261128,
            "generation": {
                "mode": "all",
                "max-examples": 30,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,  # the key is not data to fuzz
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
            },
        }
    )


schema = schemathesis.openapi.from_path(DOCUMENT, config=_config())


def _seeded(case: Case, use_seed: bool) -> Case:
    if not use_seed:
        return case
    parameters = dict(case.path_parameters)
    if "reference" in parameters:
        seeded = SEEDED_AUTHORIZATIONS[len(case.path) % 2]
        is_operation = case.path.startswith("/operations")
        parameters["reference"] = SEEDED_OPERATION if is_operation else seeded
    if "action" in parameters:
        parameters["action"] = "status"
    case.path_parameters = parameters
    return case


@schema.hook("flatmap_case")
def _half_on_seeded_records(
    context: schemathesis.HookContext, case: Case
) -> st.SearchStrategy[Case]:
    if not case.path_parameters:
        return st.just(case)
    return st.booleans().map(functools.partial(_seeded, case))


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} on {case.operation.label}: {response.text}")


CHECKS: list[schemathesis.CheckFunction] = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class Core:
    """The fake's ASGI app behind an httpx client, callable from the synchronous test."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        call = functools.partial(self._client.request, method, url, **kwargs)
        response: httpx.Response = self._portal.call(call)
        return response

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def fake_core() -> Iterator[Core]:
    fake = FakeAcquirer(api_key=API_KEY, public_url="https://core.example")
    transport = httpx.ASGITransport(app=create_app(fake), raise_app_exceptions=False)
    with (
        start_blocking_portal(name="fake-core") as portal,
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers={"Api-Key": API_KEY})
        ) as http,
    ):
        client = Core(portal, http)
        approved, pending = SEEDED_AUTHORIZATIONS
        card = {"number": "4444333322221111", "expiryMonth": "12", "expiryYear": "2030"}
        for reference, body in (
            (approved, {"card": card}),
            (pending, {"flow": "pix"}),
        ):
            answer = client.post(
                "/authorizations",
                json={"reference": reference, "amount": 10000, "currency": "BRL", **body},
            )
            assert answer.status_code == 200, answer.text
        captured = client.post(
            f"/authorizations/{approved}/captures",
            json={"reference": SEEDED_OPERATION, "amount": 4000},
        )
        assert captured.json()["status"] == "succeeded"
        yield client


@schema.parametrize()
@settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,  # one fake per operation; examples share it
    ],
)
def test_the_fake_answers_what_the_document_says(case: Case, fake_core: Core) -> None:
    kwargs = case.as_transport_kwargs(base_url=ORIGIN)
    content: dict[str, Any] = {}
    if "json" in kwargs:
        content["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        content["content"] = kwargs["data"]
    response = fake_core.request(
        kwargs["method"],
        requote_uri(kwargs["url"]),
        params=kwargs.get("params"),
        headers={**kwargs["headers"], "Api-Key": API_KEY},
        **content,
    )
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/authorizations"),
        ("GET", "/authorizations/pay-seeded-approved"),
        ("POST", "/authorizations/pay-seeded-approved/captures"),
        ("GET", f"/operations/{SEEDED_OPERATION}"),
        ("POST", "/authorizations/pay-seeded-approved/inbound/status"),
    ],
)
def test_a_missing_or_wrong_key_is_the_documented_401(
    fake_core: Core, method: str, path: str
) -> None:
    for key in ("", "wrong"):
        response = fake_core.request(method, path, headers={"Api-Key": key}, json={})
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
