"""The admin API against ``openapi.yaml``, with Schemathesis, in-process: every admin route is
documented; examples, coverage cases and fuzzed cases find no server error and nothing the
document does not declare; every operation answers 401 without the bearer token and does nothing.

Each test starts from an emptied database with the merchant the examples name (``mystore``) and
one card with the documented example id, so that the examples reach real rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias
from unittest import mock

import httpx
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Mount, Route

from connector.app import ADMIN_PREFIX, Services, create_app
from connector.giftcards.cards import IssueOrder
from tests.conftest import make_settings
from tests.schemathesis_support import httpx_request, operations_by_id

Case: TypeAlias = "schemathesis.Case[Any]"

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
ORIGIN = "http://testserver"
ADMIN_TAG = "Operators"
TOKEN = "admin-token-for-the-conformance-run"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLE_MERCHANT = "mystore"
EXAMPLE_CARD_ID = "5f0c9a2e7d1b4c3a8e6f2d9b1a7c4e30"

schema = schemathesis.openapi.from_path(
    OPENAPI_PATH,
    config=schemathesis.Config.from_dict(
        {
            "seed": 20261128,
            "generation": {
                "mode": "all",
                "max-examples": 10,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
        }
    ),
).include(tag=ADMIN_TAG)


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> None:
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} on {case.operation.label}: {response.text}")


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _operations() -> list[Any]:
    return list(operations_by_id(schema).values())


@dataclass
class AdminApi:
    portal: BlockingPortal
    client: httpx.AsyncClient
    services: Services

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return self.portal.call(functools.partial(function, *args))

    def send(self, case: Case, headers: dict[str, str]) -> httpx.Response:
        method, url, arguments = httpx_request(case, ORIGIN, headers)
        response: httpx.Response = self.call(
            functools.partial(self.client.request, method, url, **arguments)
        )
        return response


@pytest.fixture
def api(anyio_backend: str, database_url: str) -> Iterator[AdminApi]:
    app = create_app(make_settings(database_url, admin_token=TOKEN))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with (
        start_blocking_portal(name="admin-conformance-app") as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        portal.wrap_async_context_manager(
            httpx.AsyncClient(transport=transport, base_url=ORIGIN)
        ) as client,
    ):
        services: Services = app.state.services
        portal.call(services.merchants.add, EXAMPLE_MERCHANT)

        async def issue() -> None:
            merchant = await services.merchants.by_name(EXAMPLE_MERCHANT)
            assert merchant is not None
            await services.giftcards.issue(merchant, IssueOrder(amount=Decimal(50)), actor="test")

        with mock.patch("connector.giftcards.cards.generate_public_id", lambda: EXAMPLE_CARD_ID):
            portal.call(issue)
        yield AdminApi(portal, client, services)
        for card in portal.call(services.giftcards.list, None, None, 0, 10_000):
            assert portal.call(services.giftcards.report, card.card_id).consistent


def test_document_describes_every_admin_route() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))  # the lifespan is not run
    (mount,) = [r for r in app.routes if isinstance(r, Mount) and r.path == ADMIN_PREFIX]
    served = {
        (method, ADMIN_PREFIX + route.path.replace("{card_id}", "{cardId}"))
        for route in mount.routes
        if isinstance(route, Route)
        for method in set(route.methods or ()) - {"HEAD"}
    }
    documented = {(op.method.upper(), op.path) for op in _operations()}
    assert served == documented


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_operation_conforms(case: Case, api: AdminApi) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("cards"), list):
        # Batches of up to 1000 are valid; a handful per case proves the same and runs fast.
        case.body["cards"] = case.body["cards"][:5]
    response = api.send(case, BEARER)
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_every_operation_needs_the_token(api: AdminApi, headers: dict[str, str]) -> None:
    before = len(api.call(api.services.giftcards.list, None, None, 0, 100))
    for operation in _operations():
        values = {"cardId": EXAMPLE_CARD_ID, "tid": "4692c1f54d514fe69da0b472a3b2a770",
                  "merchant": EXAMPLE_MERCHANT}  # fmt: skip
        path = {p.name: values[p.name] for p in operation.path_parameters}
        if operation.method in ("post", "put"):
            body = {"merchant": EXAMPLE_MERCHANT, "amount": 5, "reason": "probe", "cards": [{}]}
            case = operation.Case(path_parameters=path, body=body, media_type="application/json")
        else:
            case = operation.Case(path_parameters=path)
        response = api.send(case, headers)
        assert response.status_code == 401, (operation.label, response.text)
        assert response.json()["code"] == "invalid-admin-token"
        case.validate_response(response, checks=CHECKS)
    assert len(api.call(api.services.giftcards.list, None, None, 0, 100)) == before
    report = api.call(api.services.giftcards.report, EXAMPLE_CARD_ID)
    assert report.card.status == "active" and report.card.available_minor == 5_000
