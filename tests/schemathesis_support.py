"""What every in-process Schemathesis module shares: the operations of a loaded document, a
case turned into an httpx request, and Hypothesis settings for reproducible runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import schemathesis
from hypothesis import HealthCheck, settings
from requests.utils import requote_uri
from schemathesis.core.result import Ok

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
