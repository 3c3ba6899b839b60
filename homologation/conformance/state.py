"""What a run shares with its checks and hooks, and HTTP exchanges as the report records them."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import httpx
import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.engine.recorder import ScenarioRecorder

from homologation.conformance.config import Case, ConformanceOptions, Group
from homologation.report import Exchange
from homologation.vtex_specs import VtexSpecs


class ProtocolFailure(Failure):
    """What a custom check found; one finding per title and operation."""

    code = "ST990"
    kind_title = "Protocol check failed"

    @property
    def _unique_key(self) -> str:
        return self.title


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _json(content: bytes | None) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def _operation_id(case: Case) -> str:
    return str(case.operation.definition.raw.get("operationId", case.operation.label))


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            if isinstance(value, list):
                value = value[0] if value else None
            return None if value is None else str(value)
    return None


@dataclass
class Payment:
    """What the run saw of one payment. Its history is only fully known when the run made it
    (`fresh`: a paymentId minted by this run): a deployment keeps what earlier runs did to the
    documented examples' payments, and a seeded run sends the same generated paymentIds again."""

    fresh: bool = False
    values: set[Decimal] = field(default_factory=set)  # requested by every POST /payments
    max_value: Decimal | None = None
    status: str | None = None
    ids: dict[str, Any] | None = None  # of the first 200
    first: tuple[str | None, bool, str | None] | None = None  # card, test suite, method
    pending: bool = False  # this run saw it `undefined`
    answered: bool = False  # this run saw a 200 for it
    replayed: bool = False
    settled: dict[str, Decimal] = field(default_factory=dict)  # requestId -> value
    refunded: dict[str, Decimal] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    answers: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)

    @property
    def limit(self) -> Decimal | None:
        """What may be settled in total, when known (only for the run's own payments)."""
        if not self.fresh:
            return None
        if self.status == "denied":
            return Decimal(0)
        if len(self.values) != 1:
            return None  # created again with another value: not known
        (value,) = self.values
        return self.max_value if self.max_value is not None else value


@dataclass
class Fixtures:
    """What the run made for its realistic requests."""

    payment_id: str | None = None  # approved, for settlements and refunds
    cancel_payment_id: str | None = None  # approved, for cancellations
    card_id: str | None = None
    card_token: str | None = None
    card_code: str | None = None
    settle_transaction_id: str | None = None  # a Debit on the card, to settle
    cancel_transaction_id: str | None = None  # another, to cancel
    analysis_id: str | None = None


class RunState:
    """The state one group's run shares with its checks and hooks (thread-safe)."""

    def __init__(self, group: Group, options: ConformanceOptions, specs: VtexSpecs) -> None:
        self.group = group
        self.options = options
        self.specs = specs
        self.fixtures = Fixtures()
        self.lock = threading.RLock()
        self.payments: defaultdict[str, Payment] = defaultdict(Payment)
        # Exchanges a check made itself, by the id of the case it checked.
        self.extra: defaultdict[str, list[Exchange]] = defaultdict(list)
        # VTEX's specification: answers compared and differences, by VTEX operation.
        self.compared: Counter[tuple[str, str]] = Counter()
        self.known: dict[tuple[str, str, str], list[Any]] = {}  # op, pattern, reason -> n, msg
        self.unexpected: dict[tuple[str, str], list[tuple[str, Exchange]]] = defaultdict(list)
        self._http: httpx.Client | None = None
        self.nonce = uuid.uuid4()  # what makes this run's paymentIds new
        base = urlsplit(options.base_url).path.rstrip("/")
        self.vtex_prefix = base + (group.vtex_mount or "")

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=self.options.request_timeout)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def derive(self, *parts: object) -> str:
        """An id new to the deployment, the same for the same parts in this run: a request
        generated again is a replay, another request never reuses an id."""
        return uuid.uuid5(self.nonce, "|".join(map(repr, parts))).hex.upper()

    def mint_payment_id(self, drawn: str) -> str:
        """A paymentId new to the deployment, the same for the same drawn value in this run."""
        payment_id = self.derive("payment", drawn)
        with self.lock:
            self.payments[payment_id].fresh = True
        return payment_id

    def vtex_path(self, url: str) -> str:
        path = urlsplit(url).path
        return path[len(self.vtex_prefix) :] if path.startswith(self.vtex_prefix) else path


_STATES: dict[int, RunState] = {}
_STATES_LOCK = threading.Lock()


@contextlib.contextmanager
def _registered(schema: schemathesis.BaseSchema, state: RunState) -> Iterator[None]:
    with _STATES_LOCK:
        _STATES[id(schema)] = state
    try:
        yield
    finally:
        with _STATES_LOCK:
            _STATES.pop(id(schema), None)


def _state_of(case: Case) -> RunState | None:
    """The run `case` belongs to; None for any other Schemathesis run in the process."""
    return _STATES.get(id(case.operation.schema))


# ----------------------------------------------------------------------------------------------
# Exchanges


def _text(body: object) -> str | None:
    if isinstance(body, str):
        return body
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return None


def _flat(headers: Mapping[str, Any]) -> dict[str, str]:
    return {
        name: ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        for name, value in headers.items()
    }


def exchange_of(recorder: ScenarioRecorder, case_id: str) -> Exchange | None:
    interaction = recorder.interactions.get(case_id)
    if interaction is None:
        return None
    request, response = interaction.request, interaction.response
    if response is None:
        return Exchange(
            request.method,
            request.uri,
            _flat(request.headers),
            _text(request.body),
            error="no response (network error or timeout)",
        )
    return Exchange(
        request.method,
        request.uri,
        _flat(request.headers),
        _text(request.body),
        response.status_code,
        _flat(response.headers),
        _text(response.content),
        response.elapsed,
    )


def exchange_of_response(response: schemathesis.Response) -> Exchange:
    request = response.request
    return Exchange(
        str(request.method),
        str(request.url),
        _flat(dict(request.headers)),
        _text(request.body),
        response.status_code,
        _flat(response.headers),
        _text(response.content),
        response.elapsed,
    )


def exchange_of_httpx(response: httpx.Response, elapsed: float) -> Exchange:
    request = response.request
    return Exchange(
        request.method,
        str(request.url),
        dict(request.headers),
        _text(request.content),
        response.status_code,
        dict(response.headers),
        response.text,
        elapsed,
    )
