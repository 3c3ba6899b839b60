"""A fake provider core speaking the acquirer API (`protocol/acquirer.py`), for tests and demos.

It behaves like a careful core (references are idempotency keys, a ledger refuses what it must)
and misbehaves on demand the way real ones do: it answers late, fails before acting, or acts and
then fails. Tests use that to prove the connector never acts twice and never loses an effect, by
reading `effects` (what really happened) and `requests` (everything that arrived).

All state lives in memory and is touched by one asyncio loop; no state change awaits anything,
so no locks are needed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from homologation.fakes.server import Pauses, RecordedRequest, record
from protocol.acquirer import (
    API_KEY_HEADER,
    ApiError,
    Authorization,
    AuthorizationCreate,
    AuthorizationStatus,
    Flow,
    InboundCall,
    InboundReply,
    Instrument,
    Operation,
    OperationCreate,
    OperationStatus,
    PaymentAppData,
)

FAULT_OPERATIONS = (
    "authorize",
    "query",
    "capture",
    "refund",
    "void",
    "operation-query",
    "inbound",
    "any",
)
EFFECT_KINDS = ("authorize", "capture", "refund", "void")
OPERATION_ID_PREFIXES = {"capture": "CAP", "refund": "REF", "void": "VOI"}
M = TypeVar("M", bound=BaseModel)


@dataclass
class Fault:
    """A misbehaviour for the next `times` calls of one operation (None: until reset)."""

    operation: str  # one of FAULT_OPERATIONS
    latency_before: float = 0.0  # sleep before acting: the core has not seen the request yet
    latency_after: float = 0.0  # act, then sleep: the effect happened, the answer is late
    status_before: int | None = None  # answer this status without acting, e.g. 503
    status_after: int | None = None  # act, then answer this status instead of the result
    times: int | None = 1

    def __post_init__(self) -> None:
        if self.operation not in FAULT_OPERATIONS:
            raise ValueError(f"operation must be one of {', '.join(FAULT_OPERATIONS)}")


NO_FAULT = Fault("any")


@dataclass(frozen=True)
class Effect:
    """Something the core really did: never a replay, never a refusal."""

    kind: str  # one of EFFECT_KINDS
    reference: str
    authorization_reference: str
    amount: int


class ApiFailure(Exception):
    """An answer in the acquirer API's error shape."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error = ApiError(code=code, message=message)

    def response(self) -> Response:
        return _json(self.error, self.status_code)


@dataclass(frozen=True)
class Outcome:
    status: AuthorizationStatus
    code: str | None
    message: str


def denied(code: str, message: str) -> Outcome:
    return Outcome(AuthorizationStatus.DENIED, code, message)


APPROVED = Outcome(AuthorizationStatus.APPROVED, "00", "Approved")
PENDING = Outcome(AuthorizationStatus.PENDING, None, "Awaiting the decision")
# Test cards: what they get now, and what a pending one turns into after async_decision_seconds.
TEST_CARDS: dict[str, tuple[Outcome, Outcome | None]] = {
    "4444333322221111": (APPROVED, None),
    "4444333322221112": (denied("51", "Insufficient funds (test card)"), None),
    "4222222222222224": (PENDING, APPROVED),
    "4222222222222225": (PENDING, denied("05", "Declined by the issuer (test card)")),
}


@dataclass
class AuthorizationRecord:
    """The core's ledger line for one authorization; no card data is kept."""

    reference: str
    amount: int
    currency: str
    outcome: Outcome
    instrument: Instrument | None
    later: Outcome | None  # what a pending authorization becomes at `decide_at`
    decide_at: float
    captured: int = 0
    refunded: int = 0
    voided: bool = False

    def settle(self) -> None:
        """Decides a pending authorization whose time has come; called on every read."""
        if self.later is not None and time.monotonic() >= self.decide_at:
            self.decide(self.later)

    def decide(self, outcome: Outcome) -> None:
        self.outcome, self.later = outcome, None

    def answer(self) -> Authorization:
        approved = self.outcome.status is AuthorizationStatus.APPROVED
        return Authorization(
            reference=self.reference,
            status=self.outcome.status,
            id=stable_id("AUT", self.reference) if approved else None,
            nsu=stable_id("NSU", f"nsu:{self.reference}") if approved else None,
            code=self.outcome.code,
            message=self.outcome.message,
            instrument=self.instrument,
        )


@dataclass
class OperationRecord:
    """An operation's first answer, with what was asked: a repeat is a replay or a conflict."""

    kind: str
    authorization_reference: str
    answer: Operation


@dataclass(kw_only=True)
class FakeAcquirer:
    """A provider core: configuration, ledger, injected faults and what it observed.

    `dedupe=False` models a core that forgets references: a repeated authorization is a second
    hold and a repeated successful operation is done again (ledger or not), each recorded as one
    more effect, so a connector that re-sends instead of asking first is caught by the count.
    """

    api_key: str
    public_url: str  # where the shopper pays a pending authorization: {public_url}/pay/{ref}
    dedupe: bool = True
    async_decision_seconds: float = 5.0
    effects: list[Effect] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    pauses: Pauses = field(default_factory=Pauses)
    authorizations: dict[str, AuthorizationRecord] = field(default_factory=dict)
    operations: dict[str, OperationRecord] = field(default_factory=dict)

    # ------------------------------------------------------------------ faults and observation

    def inject(self, fault: Fault) -> None:
        self.faults.append(replace(fault))  # a copy: `times` counts down here

    def reset_faults(self) -> None:
        """Drops every fault, and re-arms sleeps after a `release()`."""
        self.faults.clear()
        self.pauses.rearm()

    def release(self) -> None:
        """Wakes every injected sleep now (and skips later ones until `reset_faults()`)."""
        self.pauses.release()

    def effect_count(self, kind: str) -> int:
        return sum(1 for effect in self.effects if effect.kind == kind)

    def take_fault(self, operation: str) -> Fault:
        for fault in self.faults:
            if fault.operation in (operation, "any"):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                return fault
        return NO_FAULT

    # ------------------------------------------------------------------ the acquirer API

    def authorize(self, request: AuthorizationCreate) -> Authorization:
        known = self.authorizations.get(request.reference)
        if known is not None:
            if (known.amount, known.currency) != (request.amount, request.currency):
                raise ApiFailure(
                    409, "reference-conflict", "this reference has another amount or currency"
                )
            if not self.dedupe:
                self._effect("authorize", request.reference, request.reference, request.amount)
            return self.authorization(request.reference)
        now, later = decide(request)
        card_flow = request.flow is Flow.CARD
        authorization = AuthorizationRecord(
            reference=request.reference,
            amount=request.amount,
            currency=request.currency,
            outcome=now,
            instrument=None if card_flow else self._instrument(request.flow, request.reference),
            later=later,
            decide_at=time.monotonic() + self.async_decision_seconds,
        )
        self.authorizations[request.reference] = authorization
        self._effect("authorize", request.reference, request.reference, request.amount)
        return authorization.answer()

    def authorization(self, reference: str) -> Authorization:
        return self._authorization(reference).answer()

    def operate(
        self, kind: str, authorization_reference: str, request: OperationCreate
    ) -> Operation:
        authorization = self._authorization(authorization_reference)
        known = self.operations.get(request.reference)
        if known is None:
            return self._act(kind, authorization, request)
        asked = (kind, authorization_reference, request.amount)
        if (known.kind, known.authorization_reference, known.answer.amount) != asked:
            raise ApiFailure(409, "reference-conflict", "this reference names another operation")
        if self.dedupe:
            return known.answer
        if known.answer.status is OperationStatus.SUCCEEDED:
            self._apply(kind, authorization, request)  # a forgetful core does it again
            return known.answer
        return self._act(kind, authorization, request)

    def operation(self, reference: str) -> Operation:
        known = self.operations.get(reference)
        if known is None:
            raise ApiFailure(404, "operation-not-found", "no operation has this reference")
        return known.answer

    def inbound(self, reference: str, action: str, call: InboundCall) -> InboundReply:
        if action not in ("status", "decide"):
            raise ApiFailure(404, "unknown-action", f"no inbound action {action!r}")
        authorization = self._authorization(reference)
        if action == "status":
            return _status_reply(authorization, 200)
        try:
            decision = json.loads(call.body).get("decision")
        except (ValueError, AttributeError):
            decision = None
        if decision not in ("approve", "deny"):
            return InboundReply(
                status_code=400, content=json.dumps({"error": "decision must be approve or deny"})
            )
        if authorization.outcome.status is not AuthorizationStatus.PENDING:
            return _status_reply(authorization, 409)  # decided already: nothing changes
        authorization.decide(
            APPROVED if decision == "approve" else denied("declined", "Declined by the shopper")
        )
        reply = _status_reply(authorization, 200)
        reply.authorization = authorization.answer()
        return reply

    # ------------------------------------------------------------------ internals

    def _authorization(self, reference: str) -> AuthorizationRecord:
        authorization = self.authorizations.get(reference)
        if authorization is None:
            raise ApiFailure(404, "authorization-not-found", "no authorization has this reference")
        authorization.settle()
        return authorization

    def _act(
        self, kind: str, authorization: AuthorizationRecord, request: OperationCreate
    ) -> Operation:
        refusal = refusal_of(kind, authorization, request.amount)
        if refusal is None:
            self._apply(kind, authorization, request)
            answer = Operation(
                reference=request.reference,
                status=OperationStatus.SUCCEEDED,
                amount=request.amount,
                id=stable_id(OPERATION_ID_PREFIXES[kind], request.reference),
            )
        else:
            code, message = refusal
            answer = Operation(
                reference=request.reference,
                status=OperationStatus.REFUSED,
                amount=request.amount,
                code=code,
                message=message,
            )
        self.operations[request.reference] = OperationRecord(kind, authorization.reference, answer)
        return answer

    def _apply(
        self, kind: str, authorization: AuthorizationRecord, request: OperationCreate
    ) -> None:
        if kind == "capture":
            authorization.captured += request.amount
        elif kind == "refund":
            authorization.refunded += request.amount
        else:
            authorization.voided = True
            if authorization.outcome.status is AuthorizationStatus.PENDING:
                authorization.decide(denied("voided", "Voided before it was decided"))
        self._effect(kind, request.reference, authorization.reference, request.amount)

    def _effect(self, kind: str, reference: str, authorization: str, amount: int) -> None:
        self.effects.append(Effect(kind, reference, authorization, amount))

    def _instrument(self, flow: Flow, reference: str) -> Instrument:
        payment_url = f"{self.public_url}/pay/{reference}"
        if flow is Flow.REDIRECT:
            return Instrument(payment_url=payment_url, redirect_url=payment_url)
        if flow is Flow.BANK_INVOICE:
            line = digits(reference, 47)
            return Instrument(
                payment_url=payment_url,
                identification_number=line,
                identification_number_formatted=boleto_format(line),
                bar_code_image_type="i25",
                bar_code_image_number=digits(f"barcode:{reference}", 44),
            )
        if flow is Flow.PAYMENT_APP:
            payload = json.dumps({"paymentUrl": payment_url})
            app = PaymentAppData(app_name="vtex.payment-app", payload=payload)
            return Instrument(payment_url=payment_url, payment_app_data=app)
        return Instrument(payment_url=payment_url)


def decide(request: AuthorizationCreate) -> tuple[Outcome, Outcome | None]:
    """What a new authorization gets now, and what a pending one becomes later."""
    if request.flow is not Flow.CARD:
        return PENDING, APPROVED
    if request.card is None:
        return denied("missing-card", "A card payment without a card"), None
    number = request.card.number
    if "#vtex#" in number:
        return denied("tokenized-card-data", "A Secure Proxy token reached the core"), None
    if number in TEST_CARDS:
        return TEST_CARDS[number]
    if not luhn_valid(number):
        return denied("invalid-card-number", "The card number is not valid"), None
    if request.amount % 100 == 51:
        return denied("insufficient-funds", "Insufficient funds"), None
    return APPROVED, None


def refusal_of(
    kind: str, authorization: AuthorizationRecord, amount: int
) -> tuple[str, str] | None:
    """The ledger's rules: (code, message) when the operation must be refused."""
    if kind == "capture":
        if authorization.voided:
            return "voided", "The authorization was voided"
        if authorization.outcome.status is not AuthorizationStatus.APPROVED:
            return "not-approved", "The authorization is not approved"
        if authorization.captured + amount > authorization.amount:
            return "exceeds-authorized", "The captures would exceed the authorized amount"
    elif kind == "refund":
        if authorization.refunded + amount > authorization.captured:
            return "exceeds-captured", "The refunds would exceed the captured amount"
    elif authorization.captured:
        return "already-captured", "Something was captured: refund it instead"
    return None


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or len(number) < 12:
        return False
    total = 0
    for position, digit in enumerate(int(d) for d in reversed(number)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return total % 10 == 0


def stable_id(prefix: str, reference: str) -> str:
    return f"{prefix}-{hashlib.sha256(reference.encode()).hexdigest()[:12].upper()}"


def digits(seed: str, count: int) -> str:
    """`count` decimal digits derived from `seed`: the same reference, the same boleto."""
    return f"{int(hashlib.sha256(seed.encode()).hexdigest(), 16):078d}"[-count:]


def boleto_format(line: str) -> str:
    """A 47-digit boleto line as printed: AAAAA.AAAAA BBBBB.BBBBBB CCCCC.CCCCCC D EEEE…"""
    return (
        f"{line[:5]}.{line[5:10]} {line[10:15]}.{line[15:21]} "
        f"{line[21:26]}.{line[26:32]} {line[32]} {line[33:]}"
    )


def _status_reply(authorization: AuthorizationRecord, status_code: int) -> InboundReply:
    content = json.dumps({"status": authorization.outcome.status.value})
    return InboundReply(status_code=status_code, content=content)


def _json(model: BaseModel, status_code: int = 200) -> Response:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status_code)


def parse(model: type[M], body: str) -> M:
    """Validates a body; a bad one is the client's mistake (400), never a 500."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise ApiFailure(400, "invalid-request", validation_summary(error)) from None


def validation_summary(error: ValidationError) -> str:
    """What was wrong, without the values: a body may carry card data."""
    problems = (
        f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
        for problem in error.errors(include_input=False, include_context=False)
    )
    return "; ".join(problems)


Act = Callable[[dict[str, str], str], BaseModel]


def create_app(fake: FakeAcquirer) -> Starlette:
    async def admit(request: Request) -> str:
        """Records the request, then checks its key; returns the body."""
        received = await record(request)
        fake.requests.append(received)
        given = request.headers.get(API_KEY_HEADER, "").encode()
        if not hmac.compare_digest(given, fake.api_key.encode()):
            raise ApiFailure(401, "unauthorized", f"a valid {API_KEY_HEADER} header is required")
        return received.body

    def endpoint(operation: str, act: Act) -> Callable[[Request], Awaitable[Response]]:
        """An API route: `act` runs between the injected fault's before and after halves."""

        async def handle(request: Request) -> Response:
            body = await admit(request)
            fault = fake.take_fault(operation)
            await fake.pauses.sleep(fault.latency_before)
            if fault.status_before is not None:
                return injected(fault.status_before, "before acting")
            try:
                response = _json(act(request.path_params, body))
            except ApiFailure as failure:
                response = failure.response()
            await fake.pauses.sleep(fault.latency_after)
            if fault.status_after is not None:
                return injected(fault.status_after, "after acting")
            return response

        return handle

    def authorize(params: dict[str, str], body: str) -> BaseModel:
        return fake.authorize(parse(AuthorizationCreate, body))

    def query(params: dict[str, str], body: str) -> BaseModel:
        return fake.authorization(params["reference"])

    def operation_route(kind: str) -> Route:
        def operate(params: dict[str, str], body: str) -> BaseModel:
            return fake.operate(kind, params["reference"], parse(OperationCreate, body))

        path = f"/authorizations/{{reference}}/{kind}s"
        return Route(path, endpoint(kind, operate), methods=["POST"])

    def operation_query(params: dict[str, str], body: str) -> BaseModel:
        return fake.operation(params["reference"])

    def inbound(params: dict[str, str], body: str) -> BaseModel:
        call = parse(InboundCall, body)
        return fake.inbound(params["reference"], params["action"], call)

    async def add_fault(request: Request) -> Response:
        body = await admit(request)
        try:
            fake.inject(TypeAdapter(Fault).validate_json(body))
        except ValidationError as error:
            raise ApiFailure(400, "invalid-request", validation_summary(error)) from None
        return Response(status_code=204)

    async def reset_faults(request: Request) -> Response:
        await admit(request)
        fake.reset_faults()
        return Response(status_code=204)

    async def effects(request: Request) -> Response:
        await admit(request)
        return JSONResponse({kind: fake.effect_count(kind) for kind in EFFECT_KINDS})

    async def api_failure(request: Request, failure: Exception) -> Response:
        assert isinstance(failure, ApiFailure)  # registered for ApiFailure only
        return failure.response()

    return Starlette(
        routes=[
            Route("/authorizations", endpoint("authorize", authorize), methods=["POST"]),
            Route("/authorizations/{reference}", endpoint("query", query), methods=["GET"]),
            *(operation_route(kind) for kind in ("capture", "refund", "void")),
            Route(
                "/operations/{reference}",
                endpoint("operation-query", operation_query),
                methods=["GET"],
            ),
            Route(
                "/authorizations/{reference}/inbound/{action}",
                endpoint("inbound", inbound),
                methods=["POST"],
            ),
            Route("/_control/faults", add_fault, methods=["POST"]),
            Route("/_control/faults", reset_faults, methods=["DELETE"]),
            Route("/_control/effects", effects, methods=["GET"]),
        ],
        exception_handlers={ApiFailure: api_failure},
    )


def injected(status_code: int, when: str) -> Response:
    return ApiFailure(status_code, "injected-fault", f"fault injected {when}").response()
