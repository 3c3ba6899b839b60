"""HTTP to the deployment under test, every exchange recorded for the report.

One merchant's credentials serve the three protocols: VTEX's gateway sends them as
`X-VTEX-API-AppKey`/`AppToken` to the payment connector, the Gift Card Hub and the anti-fraud
calls as `X-PROVIDER-API-AppKey`/`AppToken`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from homologation.report import Exchange

PAYMENTS, ANTIFRAUD, GIFTCARDS = "payments", "antifraud", "giftcards"
MOUNTS = {PAYMENTS: "/payment-provider", ANTIFRAUD: "/antifraud", GIFTCARDS: "/giftcard"}
TEST_SUITE_HEADER = "X-VTEX-API-Is-TestSuite"
ANTIFRAUD_TEST_SUITE_HEADER = "X-PROVIDER-API-IS-TESTSUITE"


@dataclass(frozen=True)
class Target:
    """Where each protocol is served, and the merchant credentials to use."""

    base_url: str
    app_key: str
    app_token: str
    payments_url: str | None = None
    antifraud_url: str | None = None
    giftcards_url: str | None = None

    def url_of(self, protocol: str) -> str:
        override = {
            PAYMENTS: self.payments_url,
            ANTIFRAUD: self.antifraud_url,
            GIFTCARDS: self.giftcards_url,
        }[protocol]
        return (override or f"{self.base_url.rstrip('/')}{MOUNTS[protocol]}").rstrip("/")

    def credentials(self, protocol: str) -> dict[str, str]:
        prefix = "X-VTEX-API" if protocol == PAYMENTS else "X-PROVIDER-API"
        return {f"{prefix}-AppKey": self.app_key, f"{prefix}-AppToken": self.app_token}


@dataclass
class Reply:
    """A response with the exchange that recorded it."""

    exchange: Exchange
    status: int | None
    headers: httpx.Headers
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def field(self, name: str) -> Any:
        body = self.json()
        return body.get(name) if isinstance(body, dict) else None


# Called with (protocol, path relative to the protocol's mount, exchange) after each call.
Observer = Callable[[str, str, Exchange], None]


class Client:
    def __init__(self, target: Target, timeout: float = 20.0) -> None:
        self.target = target
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self.observers: list[Observer] = []

    def close(self) -> None:
        self._http.close()

    def call(
        self,
        protocol: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        authenticated: bool = True,
        params: Mapping[str, str] | None = None,
    ) -> Reply:
        """One request to `protocol`'s mount + `path`, with the merchant's credentials unless
        `authenticated` is false (`headers` may still carry some, for probes)."""
        url = f"{self.target.url_of(protocol)}{path}"
        sent = {"Accept": "application/json"}
        if authenticated:
            sent.update(self.target.credentials(protocol))
        sent.update(headers or {})
        content = None if json_body is None else json.dumps(json_body)
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
        request = self._http.build_request(
            method, url, content=content, headers=sent, params=params
        )
        started = time.perf_counter()
        try:
            response = self._http.send(request)
        except httpx.HTTPError as error:
            exchange = Exchange(
                method,
                str(request.url),
                dict(request.headers),
                content,
                elapsed_seconds=time.perf_counter() - started,
                error=f"{type(error).__name__}: {error}",
            )
            self._notify(protocol, path, exchange)
            return Reply(exchange, None, httpx.Headers(), "")
        elapsed = time.perf_counter() - started
        exchange = Exchange(
            method,
            str(request.url),
            dict(request.headers),
            content,
            response.status_code,
            dict(response.headers),
            response.text,
            elapsed,
        )
        self._notify(protocol, path, exchange)
        return Reply(exchange, response.status_code, response.headers, response.text)

    def _notify(self, protocol: str, path: str, exchange: Exchange) -> None:
        relative = urlsplit(path).path
        for observer in self.observers:
            observer(protocol, relative, exchange)
