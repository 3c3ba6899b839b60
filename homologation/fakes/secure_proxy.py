"""A fake of VTEX's Secure Proxy, which lets a provider without PCI certification send card data.

VTEX's checkout vaults the card and hands the connector tokens; the connector POSTs a body with
those tokens to the payment's `secureProxyUrl`, naming the real destination and its headers in
`X-PROVIDER-Forward-*` headers. The proxy checks the destination against the store's allow-list,
swaps the tokens for the card data and forwards the call, giving the destination 15 s. This fake
does the same, by VTEX's documented rules, and records both sides so tests can check that tokens
never reached the core and card data never reached the connector.

Its own errors are `{"error": ...}`, not the acquirer API's `ApiError`: the connector tells a
refusal by the proxy from an answer of the core by that shape.
"""

from __future__ import annotations

import json
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homologation.fakes.server import Pauses, RecordedRequest, record

FORWARD_PREFIX = "x-provider-forward-"
FORWARD_TO = "x-provider-forward-to"
PASSED_THROUGH = ("accept", "content-type", "user-agent")
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
TOKEN = re.compile(r"#vtex#token#[0-9a-f]+#(?:number|holder|csc)#")


class ProxyRefusal(Exception):
    """An answer from the proxy itself, in its own error shape."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code

    def response(self) -> Response:
        return JSONResponse({"error": str(self)}, status_code=self.status_code)


class CardToVault(BaseModel):
    """POST /tokens: what VTEX's checkout vaults (fake-only; the real one is not an API)."""

    number: str
    holder: str
    csc: str


def bare_client() -> httpx.AsyncClient:
    """A client that sends only the headers the proxy chose (httpx adds its own by default)."""
    client = httpx.AsyncClient(follow_redirects=False)
    client.headers.clear()
    return client


@dataclass(kw_only=True)
class FakeSecureProxy:
    allowed_prefixes: list[str]  # forward URLs must start with one of these
    timeout_seconds: float = 15.0  # what VTEX's proxy gives the destination
    latency: float = 0.0  # seconds the proxy waits before handling each request
    vault: dict[str, str] = field(default_factory=dict)  # token -> card data
    received: list[RecordedRequest] = field(default_factory=list)  # as the connector sent them
    forwarded: list[RecordedRequest] = field(default_factory=list)  # after the swap: card data
    failures: deque[int] = field(default_factory=deque)  # statuses to answer without forwarding
    pauses: Pauses = field(default_factory=Pauses)
    client: httpx.AsyncClient = field(default_factory=bare_client, repr=False)

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        self.failures.extend([status] * times)

    def release(self) -> None:
        """Wakes every `latency` sleep now (and skips later ones)."""
        self.pauses.release()

    async def aclose(self) -> None:
        await self.client.aclose()

    def tokenize(self, card: CardToVault) -> dict[str, Any]:
        card_id = secrets.token_hex(4)
        tokens = {part: f"#vtex#token#{card_id}#{part}#" for part in ("number", "holder", "csc")}
        self.vault.update(
            {
                tokens["number"]: card.number,
                tokens["holder"]: card.holder,
                tokens["csc"]: card.csc,
            }
        )
        return {
            "numberToken": tokens["number"],
            "holderToken": tokens["holder"],
            "cscToken": tokens["csc"],
            "bin": card.number[:6],
            "numberLength": len(card.number),
            "cscLength": len(card.csc),
        }

    def swap(self, text: str) -> str:
        """Replaces vaulted tokens with card data; anything else that looks like one is refused."""
        if "#vtex#" in TOKEN.sub("", text) or any(
            token not in self.vault for token in TOKEN.findall(text)
        ):
            raise ProxyRefusal(400, "unrecognized data in tokenized fields")
        return TOKEN.sub(lambda match: self.vault[match.group()], text)

    def swap_body(self, media_type: str, body: bytes) -> bytes:
        try:
            text = body.decode()
            if media_type == JSON:
                return json.dumps(self.swap_json(json.loads(text))).encode()
            pairs = parse_qsl(text, keep_blank_values=True)
            return urlencode([(name, self.swap(value)) for name, value in pairs]).encode()
        except ValueError:  # not UTF-8, not JSON
            raise ProxyRefusal(400, f"the body is not valid {media_type}") from None

    def swap_json(self, value: Any) -> Any:
        """Swaps inside strings, so that a quote in a holder's name stays valid JSON."""
        if isinstance(value, str):
            return self.swap(value)
        if isinstance(value, list):
            return [self.swap_json(item) for item in value]
        if isinstance(value, dict):
            return {name: self.swap_json(item) for name, item in value.items()}
        return value

    async def forward(self, request: Request) -> Response:
        received = await record(request)
        self.received.append(received)
        await self.pauses.sleep(self.latency)
        if self.failures:
            raise ProxyRefusal(self.failures.popleft(), "injected failure")
        url = request.headers.get(FORWARD_TO)
        if url is None:
            raise ProxyRefusal(400, "the X-PROVIDER-Forward-To header is required")
        if not any(url.startswith(prefix) for prefix in self.allowed_prefixes):
            raise ProxyRefusal(403, "the forward URL is not on the store's allow-list")
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in (JSON, FORM):
            raise ProxyRefusal(400, f"the content type must be {JSON} or {FORM}")
        body = self.swap_body(media_type, await request.body())
        headers = {
            name.removeprefix(FORWARD_PREFIX): value
            for name, value in request.headers.items()
            if name.startswith(FORWARD_PREFIX) and name != FORWARD_TO
        }
        headers.update(
            {name: request.headers[name] for name in PASSED_THROUGH if name in request.headers}
        )
        self.forwarded.append(RecordedRequest("POST", url, headers, body.decode()))
        try:
            answer = await self.client.post(
                url, content=body, headers=headers, timeout=self.timeout_seconds
            )
        except httpx.TimeoutException:
            raise ProxyRefusal(500, "the destination did not answer in time") from None
        except httpx.TransportError as error:
            raise ProxyRefusal(
                500, f"the destination is unreachable: {type(error).__name__}"
            ) from None
        passed = (
            {"content-type": answer.headers["content-type"]}
            if "content-type" in answer.headers
            else {}
        )
        return Response(answer.content, status_code=answer.status_code, headers=passed)


def create_app(proxy: FakeSecureProxy) -> Starlette:
    async def tokens(request: Request) -> Response:
        try:
            card = CardToVault.model_validate_json(await request.body())
        except ValidationError:
            raise ProxyRefusal(400, "number, holder and csc are required strings") from None
        return JSONResponse(proxy.tokenize(card))

    async def refusal(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProxyRefusal)  # registered for ProxyRefusal only
        return error.response()

    return Starlette(
        routes=[
            Route("/tokens", tokens, methods=["POST"]),
            Route("/proxy", proxy.forward, methods=["POST"]),
        ],
        exception_handlers={ProxyRefusal: refusal},
    )
