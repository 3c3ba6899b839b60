"""What every in-process Schemathesis module shares: the operations of a loaded document, a
case turned into an httpx request, Hypothesis settings for reproducible runs, and the app
in-process behind one client."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
import schemathesis
from anyio.from_thread import BlockingPortal
from hypothesis import HealthCheck, settings
from requests.utils import requote_uri
from schemathesis.core.result import Ok

if TYPE_CHECKING:
    from connector.app import Services
    from tests.conftest import MerchantCredentials

Case: TypeAlias = "schemathesis.Case[Any]"
Operation: TypeAlias = "schemathesis.APIOperation[Any, Any, Any, Any]"


def operation_id(operation: Operation) -> str:
    return str(operation.definition.raw["operationId"])


def operations_by_id(loaded: schemathesis.BaseSchema) -> dict[str, Operation]:
    """Every operation by operationId; fails on any operation Schemathesis cannot use."""
    operations: dict[str, Operation] = {}
    for result in loaded.get_all_operations():
        if not isinstance(result, Ok):
            raise result.err()
        operations[operation_id(result.ok())] = result.ok()
    return operations


def httpx_request(
    case: Case, base_url: str, headers: Mapping[str, str]
) -> tuple[str, str, dict[str, Any]]:
    """(method, url, keyword arguments) of `httpx.AsyncClient.request` for `case`, `headers`
    added."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=dict(headers))
    assert not kwargs.get("cookies"), "the document declares no cookie"
    arguments: dict[str, Any] = {
        "params": kwargs.get("params"),
        "headers": dict(kwargs["headers"]),
    }
    if "json" in kwargs:
        arguments["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        arguments["content"] = kwargs["data"]
    # Schemathesis targets `requests`, which percent-encodes what httpx would refuse in a URL.
    return kwargs["method"], requote_uri(kwargs["url"]), arguments


def hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,  # nothing written under .hypothesis/
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            # One app (and database) per test item on purpose: starting one per example would
            # cost more than the requests themselves, and no example depends on a clean database.
            HealthCheck.function_scoped_fixture,
        ],
    )


# Fixed, so that a run is reproducible; derandomize alone does not fix what Schemathesis draws.
SEED = 20240501


def schemathesis_config(mode: str, max_examples: int, stateful_steps: int) -> schemathesis.Config:
    """Every phase on, bounded and deterministic. Credentials are not data to fuzz: each module
    sends good ones, and probes missing or wrong ones in a test of its own."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": mode,
                "max-examples": max_examples,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": True, "max-steps": stateful_steps},
            },
        }
    )


@dataclass
class InProcessApi:
    """The app, its lifespan entered once, behind one client, for a merchant; callable from
    synchronous code (Schemathesis' hooks). Each protocol's module adds its credentials."""

    portal: BlockingPortal
    client: httpx.AsyncClient
    services: Services
    merchant: MerchantCredentials
    # (operationId, status, body code) of every generated request sent, for coverage asserts.
    seen: set[tuple[str, int, str | None]] = field(default_factory=set)

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "X-PROVIDER-API-AppKey": self.merchant.app_key,
            "X-PROVIDER-API-AppToken": self.merchant.app_token,
        }

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.portal.call(functools.partial(function, *args, **kwargs))

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.call(self.client.request, method, url, **kwargs)
        return response

    def send_to(
        self, base_url: str, case: Case, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """Send a Schemathesis case; `headers` (default: the merchant's credentials) are added."""
        extra = self.credentials if headers is None else headers
        method, url, arguments = httpx_request(case, base_url, extra)
        response = self.request(method, url, **arguments)
        try:
            body = response.json()
        except ValueError:
            body = None
        code = body.get("code") if isinstance(body, dict) else None
        self.seen.add((operation_id(case.operation), response.status_code, code))
        return response


def tagged_schemas(
    path: Path, tag: str, max_examples: int, stateful_steps: int
) -> tuple[schemathesis.BaseSchema, schemathesis.BaseSchema]:
    """The document's operations of one tag, twice: for the phases (every kind of data), and for
    the stateful run (positive data only: a link is followed from a 200), each with its own
    hooks."""
    schemas = (
        schemathesis.openapi.from_path(
            path, config=schemathesis_config(mode, max_examples, stateful_steps)
        ).include(tag=tag)
        for mode in ("all", "positive")
    )
    return next(schemas), next(schemas)
