"""The `http` acquirer: a provider's core behind the acquirer API (protocol/acquirer-api.yaml).

A tokenized card (a provider that is not PCI-certified) travels only through VTEX's Secure Proxy:
the authorization is POSTed to the payment's `secureProxyUrl` with the core's URL in
`X-PROVIDER-Forward-To` and every header meant for the core prefixed `X-PROVIDER-Forward-`; the
proxy swaps the tokens for the card data and relays the core's answer. Everything else (plain
cards, other flows, queries, captures, refunds, voids) goes to the core directly.

How answers map to outcomes, the rule that keeps money from moving twice:

    2xx with the API's body        the answer
    4xx (not 401/403/408/409/      a definitive refusal: denied / refused, nothing happened
    425/429)
    5xx, those six 4xx, timeout,   unknown: AcquirerUnavailable, and the connector asks with a
    connection error, unreadable   GET before it ever sends the same request again

The core's 401 and 403 are configuration errors (a wrong CONNECTOR_ACQUIRER_API_KEY), logged as
errors and left unknown so that VTEX's retries succeed once it is fixed; the Secure Proxy's own
400 and 403 (its bodies are not the API's) are definitive, as retrying cannot help.

A 404 counts as "never seen" only with the API's own error body, never from a mis-routed URL.
Card data and tokens are never logged: bodies are not logged at all.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any, TypeVar, overload
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from connector.acquirers.base import (
    AuthorizationOutcome,
    AuthorizationRequest,
    AuthorizationResult,
    InboundAnswer,
    OperationRequest,
    OperationResult,
)
from connector.errors import AcquirerUnavailable
from protocol.acquirer import (
    API_KEY_HEADER,
    REFERENCE_PATTERN,
    ApiError,
    Authorization,
    AuthorizationCreate,
    AuthorizationStatus,
    Card,
    InboundCall,
    InboundReply,
    Operation,
    OperationCreate,
    OperationStatus,
)

log = logging.getLogger(__name__)
_M = TypeVar("_M", bound=BaseModel)

FORWARD_TO_HEADER = "X-PROVIDER-Forward-To"
FORWARD_PREFIX = "X-PROVIDER-Forward-"
# Statuses that mean "not processed now, try later", "not what you think" (409) or "this
# deployment is misconfigured" (401, 403): unknown outcomes, never refusals.
_NOT_A_REFUSAL = frozenset({401, 403, 408, 409, 425, 429})
# The database's column sizes for what the core says (connector/db/tables.py).
_ID_LENGTH, _MESSAGE_LENGTH = 64, 500
_REFERENCE = re.compile(REFERENCE_PATTERN)
_OUTCOMES = {
    AuthorizationStatus.APPROVED: AuthorizationOutcome.APPROVED,
    AuthorizationStatus.DENIED: AuthorizationOutcome.DENIED,
    AuthorizationStatus.PENDING: AuthorizationOutcome.PENDING,
}
_PROXY_REFUSALS = {
    400: "VTEX's Secure Proxy refused the request (unrecognized card tokens or no forward URL)",
    403: "VTEX's Secure Proxy does not allow the acquirer URL; ask VTEX to allow-list it",
}


def reference_for(key: str) -> str:
    """The API reference of an idempotency key: the key itself when it fits the API's pattern,
    else a stable digest of it (a VTEX requestId may hold any character)."""
    if _REFERENCE.match(key):
        return key
    prefix = key.split(":", 1)[0]
    return f"{prefix}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class HttpAcquirer:
    name = "http"

    def __init__(
        self, base_url: str, api_key: SecretStr, client: httpx.AsyncClient, user_agent: str
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._client = client
        self._user_agent = user_agent

    # ------------------------------------------------------------------ authorization

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationResult:
        reference = reference_for(request.idempotency_key)
        try:
            body = _authorization_body(request, reference)
        except ValidationError:
            # Nothing was sent: a definitive no, without echoing the (card) values.
            return _denied("invalid-card-data", "The card data does not fit the acquirer API")
        card = request.card
        if card is not None and card.tokenized:
            if not request.secure_proxy_url:
                raise ValueError("a tokenized card needs the payment's secureProxyUrl")
            response = await self._through_proxy(request.secure_proxy_url, "/authorizations", body)
            return self._authorization_answer(response, via_proxy=True)
        response = await self._call("POST", "/authorizations", body)
        return self._authorization_answer(response, via_proxy=False)

    async def query(self, idempotency_key: str) -> AuthorizationResult | None:
        reference = reference_for(idempotency_key)
        response = await self._call("GET", f"/authorizations/{_segment(reference)}")
        if _never_seen(response):
            return None
        if response.status_code != 200:
            raise self._unknown(response)
        return _authorization_result(self._parse(response, Authorization))

    def _authorization_answer(
        self, response: httpx.Response, *, via_proxy: bool
    ) -> AuthorizationResult:
        status = response.status_code
        if 200 <= status < 300:
            return _authorization_result(self._parse(response, Authorization))
        error = _api_error(response)
        if via_proxy and error is None and status in _PROXY_REFUSALS:
            # The proxy's own refusal: the core never saw the request.
            message = _PROXY_REFUSALS[status]
            log.error("authorization refused by the Secure Proxy (%s): %s", status, message)
            return _denied(f"secure-proxy-{status}", message)
        if not 400 <= status < 500 or status in _NOT_A_REFUSAL:
            raise self._unknown(response)
        if error is not None:
            return _denied(error.code, error.message)
        return _denied(f"acquirer-http-{status}", f"The acquirer answered {status}")

    # ------------------------------------------------------------------ capture, refund, void

    async def capture(self, request: OperationRequest) -> OperationResult:
        return await self._operate("captures", request)

    async def refund(self, request: OperationRequest) -> OperationResult:
        return await self._operate("refunds", request)

    async def void(self, request: OperationRequest) -> OperationResult:
        return await self._operate("voids", request)

    async def _operate(self, kind: str, request: OperationRequest) -> OperationResult:
        authorization = _segment(reference_for(request.authorization_key))
        body = OperationCreate(
            reference=reference_for(request.idempotency_key), amount=request.amount_minor
        )
        response = await self._call("POST", f"/authorizations/{authorization}/{kind}", body)
        status = response.status_code
        if 200 <= status < 300:
            return _operation_result(self._parse(response, Operation))
        if not 400 <= status < 500 or status in _NOT_A_REFUSAL:
            raise self._unknown(response)
        error = _api_error(response)
        if error is not None:
            return _refused(error.code, error.message)
        return _refused(f"acquirer-http-{status}", f"The acquirer answered {status}")

    async def query_operation(self, idempotency_key: str) -> OperationResult | None:
        reference = _segment(reference_for(idempotency_key))
        response = await self._call("GET", f"/operations/{reference}")
        if _never_seen(response):
            return None
        if response.status_code != 200:
            raise self._unknown(response)
        return _operation_result(self._parse(response, Operation))

    # ------------------------------------------------------------------ inbound requests

    async def inbound(self, action: str, authorization_key: str, body: str) -> InboundAnswer | None:
        reference = _segment(reference_for(authorization_key))
        path = f"/authorizations/{reference}/inbound/{_segment(action)}"
        response = await self._call("POST", path, InboundCall(body=body))
        if response.status_code == 404:
            error = _api_error(response)
            if error is not None and error.code == "unknown-action":
                return None
        if response.status_code != 200:
            raise self._unknown(response)
        reply = self._parse(response, InboundReply)
        outcome = _authorization_result(reply.authorization) if reply.authorization else None
        return InboundAnswer(reply.status_code, reply.content_type, reply.content, outcome)

    # ------------------------------------------------------------------ transport

    def _headers(self) -> dict[str, str]:
        return {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": self._user_agent,
        }

    async def _call(self, method: str, path: str, body: BaseModel | None = None) -> httpx.Response:
        headers = {**self._headers(), API_KEY_HEADER: self._api_key.get_secret_value()}
        content = body.model_dump_json(by_alias=True) if body is not None else None
        return await self._send(method, f"{self._base_url}{path}", headers, content)

    async def _through_proxy(
        self, proxy_url: str, path: str, body: AuthorizationCreate
    ) -> httpx.Response:
        """VTEX's documented proxy call: the core's URL and headers travel as Forward headers;
        the proxy sends on only those (prefix stripped) and Accept, Content-Type, User-Agent."""
        headers = {
            **self._headers(),
            FORWARD_TO_HEADER: f"{self._base_url}{path}",
            f"{FORWARD_PREFIX}{API_KEY_HEADER}": self._api_key.get_secret_value(),
        }
        return await self._send("POST", proxy_url, headers, body.model_dump_json(by_alias=True))

    async def _send(
        self, method: str, url: str, headers: dict[str, str], content: str | None
    ) -> httpx.Response:
        try:
            return await self._client.request(method, url, headers=headers, content=content)
        except httpx.HTTPError as error:
            # The request may or may not have arrived: the outcome is unknown.
            raise AcquirerUnavailable(
                f"no answer from the acquirer ({type(error).__name__})", acquirer=self.name
            ) from error

    def _parse(self, response: httpx.Response, model: type[_M]) -> _M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as error:
            raise AcquirerUnavailable(
                f"unreadable answer from the acquirer (HTTP {response.status_code})",
                acquirer=self.name,
            ) from error

    def _unknown(self, response: httpx.Response) -> AcquirerUnavailable:
        level = logging.ERROR if response.status_code in (401, 403) else logging.WARNING
        log.log(level, "acquirer answered HTTP %s; outcome unknown", response.status_code)
        return AcquirerUnavailable(
            f"the acquirer answered HTTP {response.status_code}", acquirer=self.name
        )


def _segment(value: str) -> str:
    return quote(value, safe="")


def _authorization_body(request: AuthorizationRequest, reference: str) -> AuthorizationCreate:
    card = request.card
    wire_card: dict[str, Any] | None = None
    if card is not None and card.number:
        wire_card = {
            "number": card.number,
            "holder": card.holder,
            "csc": card.csc,
            "expiryMonth": card.expiry_month,
            "expiryYear": card.expiry_year,
        }
    return AuthorizationCreate.model_validate(
        {
            "reference": reference,
            "amount": request.amount_minor,
            "currency": request.currency,
            "flow": request.flow,
            "paymentMethod": request.payment_method,
            "installments": request.installments,
            "card": Card.model_validate(wire_card) if wire_card else None,
            "merchantName": request.merchant_name,
            "returnUrl": request.return_url,
        }
    )


def _authorization_result(answer: Authorization) -> AuthorizationResult:
    instrument = (
        answer.instrument.model_dump(mode="json", by_alias=True, exclude_none=True)
        if answer.instrument is not None
        else None
    )
    approved = answer.status is AuthorizationStatus.APPROVED
    return AuthorizationResult(
        outcome=_OUTCOMES[answer.status],
        # VTEX needs an id for an approval: the core's, else the reference it was made with.
        authorization_id=_clip(answer.id or answer.reference, _ID_LENGTH) if approved else None,
        nsu=_clip(answer.nsu, _ID_LENGTH),
        code=_clip(answer.code, _ID_LENGTH),
        message=_clip(answer.message, _MESSAGE_LENGTH),
        instrument=instrument or None,
    )


def _operation_result(answer: Operation) -> OperationResult:
    if answer.status is OperationStatus.SUCCEEDED:
        return OperationResult(True, _clip(answer.id or answer.reference, _ID_LENGTH), None, None)
    return _refused(answer.code or "refused-by-acquirer", answer.message)


def _denied(code: str, message: str) -> AuthorizationResult:
    return AuthorizationResult(
        AuthorizationOutcome.DENIED,
        None,
        None,
        _clip(code, _ID_LENGTH),
        _clip(message, _MESSAGE_LENGTH),
    )


def _refused(code: str, message: str | None) -> OperationResult:
    return OperationResult(False, None, _clip(code, _ID_LENGTH), _clip(message, _MESSAGE_LENGTH))


@overload
def _clip(value: str, length: int) -> str: ...
@overload
def _clip(value: str | None, length: int) -> str | None: ...
def _clip(value: str | None, length: int) -> str | None:
    """What the core says, cut to what the database keeps (a long code must not fail a write)."""
    return value[:length] if value is not None else None


def _api_error(response: httpx.Response) -> ApiError | None:
    try:
        return ApiError.model_validate_json(response.content)
    except ValidationError:
        return None


def _never_seen(response: httpx.Response) -> bool:
    """A 404 in the API's own words; any other 404 (a wrong base URL) is an outage."""
    if response.status_code != 404:
        return False
    error = _api_error(response)
    return error is not None and error.code.endswith("-not-found")
