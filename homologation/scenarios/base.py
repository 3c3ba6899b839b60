"""What every scenario is written with: a `Run` that makes calls (recorded in the scenario) and
turns expectations into checks, stopping the scenario when a later step cannot make sense."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homologation.client import Client, Reply
from homologation.receiver import Arrival, Receiver
from homologation.report import Exchange, Scenario

MISSING = object()
# The shipping address of VTEX's own examples (the anti-fraud collection's, the payment spec's).
SHIPPING_ADDRESS = {
    "country": "BRA",
    "street": "Praia de Botafogo St.",
    "number": "300",
    "complement": "3rd Floor",
    "neighborhood": "Botafogo",
    "postalCode": "22250040",
    "city": "Rio de Janeiro",
    "state": "RJ",
}


class Abort(Exception):  # control flow: the failure that ends a scenario is already recorded
    """A step failed and the steps after it depend on it: end the scenario here."""


@dataclass(frozen=True)
class Limits:
    max_response_time: float = 5.0  # VTEX's Test Suite fails a call slower than this
    callback_timeout: float = 15.0  # "after 15 seconds, we expect to receive another response"
    hook_timeout: float = 10.0  # the anti-fraud tester waits 10 s for the hook


@dataclass
class Run:
    scenario: Scenario
    client: Client
    receiver: Receiver | None
    limits: Limits
    callback_app_key: str | None = None  # the X-VTEX-API-AppKey callbacks must carry, if known

    # ----- calls
    def call(self, protocol: str, method: str, path: str, **kwargs: Any) -> Reply:
        return self.client.call(protocol, method, path, **kwargs)

    # ----- expectations
    def expect(self, condition: bool, name: str, detail: str = "", *evidence: Exchange) -> bool:
        return self.scenario.expect(condition, name, detail, *evidence)

    def require(self, condition: bool, name: str, detail: str = "", *evidence: Exchange) -> None:
        """As `expect`, but a failure ends the scenario."""
        if not self.expect(condition, name, detail, *evidence):
            raise Abort(name)

    def status(self, reply: Reply, name: str, *allowed: int) -> Any:
        """`reply` answered one of `allowed` with JSON (else the scenario ends); its body."""
        allowed = allowed or (200,)
        body = reply.json()
        wanted = " or ".join(str(code) for code in allowed)
        if reply.status is None:
            detail = f"no answer: {reply.exchange.error}"
        elif reply.status not in allowed:
            detail = f"answered {reply.status}, expected {wanted}"
        elif not isinstance(body, (dict, list)):
            detail = "the body is not a JSON object or array"
        else:
            self.scenario.passed(name, f"{reply.status}")
            return body
        self.scenario.failed(name, detail, reply.exchange)
        raise Abort(name)

    def equals(self, reply: Reply, field: str, expected: Any, required: bool = False) -> bool:
        """The JSON body's `field` is `expected` (a dotted path reads nested objects)."""
        actual = read(reply.json(), field)
        shown = "(absent)" if actual is MISSING else repr(actual)
        ok = self.expect(
            actual == expected,
            f"{field} is {expected!r}",
            f"{field} is {shown}, expected {expected!r}",
            reply.exchange,
        )
        if required and not ok:
            raise Abort(field)
        return ok

    def present(self, reply: Reply, *fields: str) -> bool:
        """Each of `fields` is in the body, not null and not empty."""
        body = reply.json()
        missing = [f for f in fields if read(body, f) in (MISSING, None, "")]
        return self.expect(
            not missing,
            f"{', '.join(fields)} present",
            f"missing, null or empty: {', '.join(missing)}",
            reply.exchange,
        )

    def wait_for_callback(
        self, token: str, url: str, what: str, timeout: float, sent_at: float
    ) -> Arrival:
        """The one POST expected at `url` within `timeout` of `sent_at`, with VTEX's headers;
        the scenario ends when it does not arrive."""
        assert self.receiver is not None
        arrivals = self.receiver.wait(token, timeout - (time.monotonic() - sent_at))
        if not arrivals:
            self.scenario.failed(
                f"{what} arrives within {timeout:.0f} s",
                f"nothing was POSTed to {url} within {timeout:.0f} s",
            )
            raise Abort(what)
        first = arrivals[0]
        self.scenario.passed(
            f"{what} arrives within {timeout:.0f} s", f"after {first.at - sent_at:.1f} s"
        )
        expected_tail = url[url.index("/callbacks/") :]
        self.expect(
            first.url_tail == expected_tail,
            f"{what} goes to the URL exactly as given",
            f"POSTed to {first.url_tail}, expected {expected_tail}",
        )
        self.expect(
            first.headers.get("content-type", "").startswith("application/json"),
            f"{what} is JSON",
            f"Content-Type: {first.headers.get('content-type')!r}",
        )
        return first

    def check_vtex_credentials(self, arrival: Arrival, what: str) -> None:
        """VTEX authenticates callbacks by the provider's own AppKey/AppToken."""
        key = arrival.headers.get("x-vtex-api-appkey", "")
        token = arrival.headers.get("x-vtex-api-apptoken", "")
        self.expect(
            bool(key and token),
            f"{what} carries X-VTEX-API-AppKey and X-VTEX-API-AppToken",
            "VTEX refuses a callback without the provider's credentials; headers received: "
            + ", ".join(sorted(arrival.headers)),
        )
        if self.callback_app_key is not None:
            self.expect(
                key == self.callback_app_key,
                f"{what} is signed with the expected app key",
                f"X-VTEX-API-AppKey is {key!r}, expected {self.callback_app_key!r}",
            )

    def only_once(self, token: str, what: str, settle_seconds: float = 1.0) -> None:
        """Nothing more than one delivery of `token` arrives (after a short grace period)."""
        assert self.receiver is not None
        time.sleep(settle_seconds)
        count = len(self.receiver.received(token))
        self.expect(count == 1, f"{what} is sent once", f"it arrived {count} times")


def read(body: Any, dotted: str) -> Any:
    value = body
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


ScenarioFunction = Callable[[Run], None]


@dataclass(frozen=True)
class Definition:
    suite: str
    name: str
    stands_for: str
    function: ScenarioFunction
