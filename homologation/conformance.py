"""Schemathesis' phases (examples, coverage, fuzzing, stateful) against a deployment, reported
as homologation scenarios.

`run_conformance` tests the operations `openapi.yaml` describes for the chosen protocols (and
the admin API, tag Operators, of those protocols when an admin token is given), over HTTP only,
at any base URL, with a merchant's credentials. It returns, per protocol, a "fixtures"
scenario, one scenario per phase ("payments: fuzzing"...) with one `Check` per operation
(passed, with the statuses answered; or failed, with what was found, the `curl` command that
reproduces it and the exchanges that prove it), and a "VTEX specification" scenario: how the
answers compared with VTEX's own specification (`homologation.vtex_specs`).

**Checks.** Schemathesis' built-in checks (server errors, status codes, content types, bodies
and headers against the document, authentication actually enforced, deleted resources gone,
created ones available, `max_response_time`...) but for those `DISABLED_CHECKS` and
`DISABLED_FOR` leave out, with the reason; and checks of what only the protocols say,
registered with `@schemathesis.check` (they only act on this module's runs):

* `settle_within_authorization`: per `paymentId`, the successful settlements (distinct
  `requestId`s) never exceed the authorized value (`maxValue` when announced, nothing for a
  denied payment), nor what each asked; refunds never exceed what was settled; a settled
  payment is never cancelled, nor a cancelled one settled; a repeated `requestId` answers what
  it answered;
* `idempotent_create_payment`: a repeated `POST /payments` (same `paymentId`) keeps
  `paymentId`, `tid`, `nsu` and `authorizationId` (null ones may be set later); the first `200`
  of every `paymentId` is sent again once, to make sure;
* `vtex_test_suite_cards`: with `X-VTEX-API-Is-TestSuite: true`, VTEX's Test Suite cards get
  their statuses (4444333322221111 approved, 4444333322221112 denied, 4222222222222224 and
  4222222222222225 undefined, then approved and denied);
* `agrees_with_vtex_specification`: `VtexSpecs.differences` finds no unexpected difference
  (the known ones are listed with their reasons in the "VTEX specification" scenario).

A deployment keeps what earlier runs did (the documented examples' fixed `paymentId`s, and a
derandomized run sends the same generated ones again): what depends on a payment's whole
history (the authorized and settled totals, the first answer of a Test Suite card) is only
checked on the payments this run made itself (`Payment.fresh`); the rest on every payment.

**Links.** The stateful phase follows the document's OpenAPI links (`createPayment` ->
settle -> refund, `createPayment` -> cancel, the gift card transaction -> settlements ->
cancellations, the anti-fraud analysis -> status, update, stop); its scenario says which it
followed. Its walk is random: each of `REQUIRED_LINKS` it did not follow to a 2xx is then
followed once (`LinkWalker`), and a check says so.

**Realistic data.** Random data mostly meets the service's 400s and 404s. About half of the
fuzzed and stateful requests are therefore made realistic by generation hooks: a
`POST /payments` with one of VTEX's Test Suite cards (or a bank invoice, or the Test Suite's
redirect card), `X-VTEX-API-Is-TestSuite: true` (so that the sandbox decides, never a real
acquirer), a `callbackUrl` on VTEX's domain, a plausible amount and a `paymentId` new to the
deployment; settlements, refunds and cancellations of a payment made for the run; gift card
calls on a card made (and credited) for the run, with its token; anti-fraud reads, updates and
stops of an analysis made for the run. Those fixtures are made first, over plain HTTP, and
reported ("payments: fixtures"). Run it against a homologation deployment, never a production
one: it creates payments, cards and analyses (and, with the admin token, issues, blocks and
credits cards and loads anti-fraud rules).

**Design.** Schemathesis' engine (`schemathesis.engine.from_schema(schema).execute()`), not its
CLI: the engine's events carry each scenario's recorder (cases, requests, answers, check
results with their curl reproduction), which become `Scenario`, `Check` and `Exchange`
directly, and the custom checks and generation hooks are plain functions sharing the run's
state (the ledger of amounts, the fixtures). With the CLI, they would be a hooks module loaded
by path sharing that state through files, and the results would be parsed back from report
files. Each protocol is its own engine run: its operations share a mount and credentials (the
payment protocol's `X-VTEX-API-*` headers, the others' `X-PROVIDER-API-*`, which
`ignored_auth` removes and replaces by wrong ones). The runs go in parallel, one
`python -m homologation.conformance` process each: Schemathesis' generation is CPU-bound
Python (threads would share one core), and `multiprocessing` would import the caller's
`__main__` again in its workers. Without a `seed`, generation is derandomized: every run sends
the same requests (but for the ids made new to the deployment); shrinking is off (a failure
against a live, stateful deployment is reported as found).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import httpx
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.engine import Status, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from homologation.report import Check, Exchange, Outcome, Scenario
from homologation.vtex_specs import VtexSpecs

Case: TypeAlias = "schemathesis.Case[Any]"
Derive: TypeAlias = Callable[..., str]

PHASES = ("examples", "coverage", "fuzzing", "stateful")
SUITES = ("payments", "antifraud", "giftcards")
SUITE = "conformance"  # Scenario.suite of everything this module reports

# Built-in checks left out, and why.
DISABLED_CHECKS: Mapping[str, str] = {
    "positive_data_acceptance": (
        "the document is lenient by design and the service answers 400 to schema-valid "
        "requests (a settlement of 0, more decimals than the currency has, an unknown card): "
        "the same reason as tests/test_openapi_conformance.py"
    ),
    "negative_data_rejection": (
        "the service ignores what it does not need (an X-VTEX-API-Is-TestSuite other than "
        "`true`, a null optional field) and accepts JSON whatever the Content-Type"
    ),
    "allow_header_conformance": (
        "no VTEX party sends OPTIONS or an undocumented method; the service's 405 answers "
        "list the methods of one route only (reported as a service bug)"
    ),
}
# Built-in checks left out for one protocol.
DISABLED_FOR: Mapping[str, Mapping[str, str]] = {
    "antifraud": {
        "use_after_free": (
            "DELETE /antifraud/transactions/{id} stops an analysis, it deletes nothing: its "
            "status stays readable (VTEX's protocol)"
        ),
    },
}

# (protocol, source operationId, target operationId) the stateful phase must follow.
REQUIRED_LINKS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "payments": (
        ("createPayment", "settlePayment"),
        ("settlePayment", "refundPayment"),
        ("createPayment", "cancelPayment"),
    ),
    "giftcards": (
        ("createGiftCardTransaction", "settleGiftCardTransaction"),
        ("settleGiftCardTransaction", "cancelGiftCardTransaction"),
        ("createGiftCardTransaction", "cancelGiftCardTransaction"),
    ),
    "antifraud": (
        ("antifraudSendTransaction", "antifraudGetTransaction"),
        ("antifraudSendTransaction", "antifraudUpdateTransaction"),
        ("antifraudSendTransaction", "antifraudStopTransaction"),
    ),
}

TEST_SUITE_HEADER = "X-VTEX-API-Is-TestSuite"
# VTEX's Test Suite cards: the status of a new payment's first answer, of later answers while
# it was pending (and not cancelled), and any a payment of this card can ever have (an async
# payment cancelled while pending answers `denied`).
TEST_SUITE_CARDS: Mapping[str, tuple[str, frozenset[str], frozenset[str]]] = {
    "4444333322221111": ("approved", frozenset({"approved"}), frozenset({"approved"})),
    "4444333322221112": ("denied", frozenset({"denied"}), frozenset({"denied"})),
    "4222222222222224": (
        "undefined",
        frozenset({"undefined", "approved"}),
        frozenset({"undefined", "approved", "denied"}),
    ),
    "4222222222222225": (
        "undefined",
        frozenset({"undefined", "denied"}),
        frozenset({"undefined", "denied"}),
    ),
}
CARD_METHODS = frozenset(
    {"Visa", "Mastercard", "American Express", "Diners", "Elo", "Hipercard", "Discover", "JCB"}
)
PAYMENT_IDS = ("paymentId", "tid", "nsu", "authorizationId")
# Where VTEX's gateway calls back: its payments domain, which every deployment allows.
CALLBACK_URL = (
    "https://homologation.vtexpayments.com.br/api/pvt/payment-provider/transactions/"
    "{transaction}/payments/{payment}/callback?accountName=homologation"
)
EXCHANGES_PER_FAILURE = 2
# The gift card fixtures: what is loaded on the card, and each of the two Debits on it (large:
# fuzzed settlements and cancellations, the documented examples' included, reach them too).
CARD_CREDIT = 100_000
CARD_DEBIT = 40_000


def _default_openapi() -> Path:
    """The repository's document; in an installed wheel, the copy shipped in `connector`'s
    folder (found without importing it)."""
    in_repository = Path(__file__).resolve().parents[1] / "openapi.yaml"
    if in_repository.is_file():
        return in_repository
    spec = importlib.util.find_spec("connector")
    if spec is not None and spec.origin is not None:
        return Path(spec.origin).parent / "openapi.yaml"
    return in_repository


DEFAULT_OPENAPI = _default_openapi()


@dataclass(frozen=True)
class ConformanceOptions:
    base_url: str  # e.g. http://127.0.0.1:8000, where the three protocols are mounted
    app_key: str
    app_token: str  # a merchant's credentials
    suites: tuple[str, ...]  # subset of SUITES
    openapi: Path = DEFAULT_OPENAPI
    phases: tuple[str, ...] = PHASES
    max_examples: int = 25
    max_response_time: float = 5.0  # seconds, VTEX's Test Suite limit
    seed: int | None = None  # None: derandomized generation; else random from this seed
    admin_token: str | None = None  # the admin API (tag Operators) is tested only with it
    request_timeout: float = 10.0
    parallel: bool = True  # one process per protocol


@dataclass(frozen=True)
class Group:
    """The operations of one engine run: a protocol (or the admin API), mounted at
    `base_url + mount`, with its credentials (security scheme -> key, token or admin)."""

    name: str
    tag: str
    mount: str
    credentials: tuple[tuple[str, str], ...]
    vtex_mount: str | None = None  # the VTEX protocol's mount, for VtexSpecs paths
    excluded: str | None = None  # leaves out the operations whose path matches this expression

    @property
    def protocol(self) -> str | None:
        return self.name if self.vtex_mount is not None else None

    @property
    def has_links(self) -> bool:
        """Whether the document links its operations (the admin API's are not)."""
        return self.name in REQUIRED_LINKS


GROUPS: Mapping[str, Group] = {
    "payments": Group(
        "payments",
        "Payment Flow",
        "/payment-provider",
        (("VtexAppKey", "key"), ("VtexAppToken", "token")),
        vtex_mount="/payment-provider",
    ),
    "antifraud": Group(
        "antifraud",
        "Anti-fraud Provider Protocol",
        "",  # the document writes its paths in full: /antifraud/...
        (("AntifraudAppKey", "key"), ("AntifraudAppToken", "token")),
        vtex_mount="/antifraud",
    ),
    "giftcards": Group(
        "giftcards",
        "Gift Card Provider Protocol",
        "/giftcard",
        (("GiftCardHubAppKey", "key"), ("GiftCardHubAppToken", "token")),
        vtex_mount="/giftcard",
    ),
}
ADMIN_PATHS = {"antifraud": "/admin/antifraud", "giftcards": "/admin/giftcards"}


def groups_for(options: ConformanceOptions) -> list[Group]:
    unknown = set(options.suites) - set(SUITES)
    if unknown:
        raise ValueError(f"unknown suites {sorted(unknown)}; choose among {SUITES}")
    unknown = set(options.phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown phases {sorted(unknown)}; choose among {PHASES}")
    groups = [GROUPS[suite] for suite in SUITES if suite in options.suites]
    admin = [path for suite, path in ADMIN_PATHS.items() if suite in options.suites]
    others = [path for suite, path in ADMIN_PATHS.items() if suite not in options.suites]
    if options.admin_token and admin:
        pattern = "^(?:" + "|".join(re.escape(path) for path in others) + ")(?:/|$)"
        credentials = (("AdminBearer", "admin"),)
        groups.append(
            Group("operators", "Operators", "", credentials, None, pattern if others else None)
        )
    return groups


# ----------------------------------------------------------------------------------------------
# Running


def run_conformance(options: ConformanceOptions, specs: VtexSpecs | None = None) -> list[Scenario]:
    """Every phase of `options` on every chosen protocol; the scenarios of each protocol in turn
    (fixtures, then the phases, then the comparison with VTEX's specification)."""
    specs = specs or VtexSpecs.load()
    groups = groups_for(options)
    if not options.parallel or len(groups) < 2:
        return [scenario for group in groups for scenario in run_group(group, options, specs)]
    return run_in_processes(groups, options, specs)


def run_in_processes(
    groups: list[Group], options: ConformanceOptions, specs: VtexSpecs
) -> list[Scenario]:
    """One `python -m homologation.conformance JOB RESULT` process per group. Not
    `multiprocessing`: its spawned workers import the caller's `__main__` again, which
    `python -m homologation` (no `__name__` guard) would run."""
    environment = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [package_root, environment.get("PYTHONPATH")])
    )
    results: list[Scenario] = []
    with tempfile.TemporaryDirectory(prefix="conformance-") as directory:
        running = []
        for group in groups:
            # The directory is the caller's alone (mkdtemp): the job holds the credentials.
            job, result, log = (
                Path(directory) / f"{group.name}.{kind}" for kind in ("job", "result", "log")
            )
            job.write_bytes(pickle.dumps((group, options, specs)))
            with log.open("wb") as output:
                process = subprocess.Popen(  # noqa: S603 - this interpreter, module, files
                    [sys.executable, "-m", "homologation.conformance", str(job), str(result)],
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            running.append((group, result, log, process))
        try:
            for group, result, log, process in running:
                process.wait()
                if process.returncode == 0 and result.is_file():
                    # Written by the process started above from our own objects only.
                    results.extend(pickle.loads(result.read_bytes()))  # noqa: S301
                else:
                    tail = log.read_text("utf-8", "replace")[-3000:]
                    error = RuntimeError(f"exit status {process.returncode}\n{tail}")
                    results.append(_crashed(group, error))
        finally:  # interrupted: the runs stop too
            for _, _, _, process in running:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    return results


def _worker(job: Path, result: Path) -> None:
    group, options, specs = pickle.loads(job.read_bytes())  # noqa: S301 - written by our parent
    result.write_bytes(pickle.dumps(run_group(group, options, specs)))


def _crashed(group: Group, error: BaseException) -> Scenario:
    scenario = Scenario(SUITE, f"{group.name}: Schemathesis", "openapi.yaml")
    scenario.error = f"{type(error).__name__}: {error}"
    return scenario


def run_group(group: Group, options: ConformanceOptions, specs: VtexSpecs) -> list[Scenario]:
    """One engine run: the group's fixtures, its phases, its comparison with VTEX's spec."""
    started = time.monotonic()
    _register_checks()
    state = RunState(group, options, specs)
    scenarios: list[Scenario] = []
    try:
        fixtures = make_fixtures(state)
        if fixtures is not None:
            scenarios.append(fixtures)
        schema = load_schema(group, options)
        add_hooks(schema, state)
        collector = Collector(state, schema)
        with _registered(schema, state):
            for event in from_schema(schema).execute():
                collector.handle(event)
            if "stateful" in options.phases and group.has_links and collector.fatal is None:
                LinkWalker(state, collector).walk()
        scenarios.extend(collector.scenarios())
        if group.protocol is not None:
            scenarios.append(specification_scenario(state))
    except Exception as error:
        failed = _crashed(group, error)
        failed.error = f"{failed.error}\n{traceback.format_exc(limit=8)}"
        failed.seconds = time.monotonic() - started
        scenarios.append(failed)
    finally:
        state.close()
    return scenarios


def config_for(group: Group, options: ConformanceOptions) -> dict[str, Any]:
    """The Schemathesis configuration of a group's run."""
    secrets = {"key": options.app_key, "token": options.app_token, "admin": options.admin_token}
    auth: dict[str, Any] = {}
    for scheme, kind in group.credentials:
        value = secrets[kind] or ""
        auth[scheme] = {"bearer": value} if kind == "admin" else {"api_key": value}
    disabled = {**DISABLED_CHECKS, **DISABLED_FOR.get(group.name, {})}
    checks: dict[str, Any] = {name: {"enabled": False} for name in disabled}
    checks["max_response_time"] = options.max_response_time
    enabled = set(options.phases)
    seed = {} if options.seed is None else {"seed": options.seed}
    return {
        **seed,
        "base-url": options.base_url.rstrip("/") + group.mount,
        "request-timeout": options.request_timeout,
        "workers": 1,
        "continue-on-failure": True,
        "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
        "generation": {
            "max-examples": options.max_examples,
            # Without a seed, every run generates the same requests (Hypothesis derandomized).
            "deterministic": options.seed is None,
            "database": "none",
            "no-shrink": True,
        },
        "checks": checks,
        "auth": {"openapi": auth},
        "phases": {
            "examples": {"enabled": "examples" in enabled},
            "coverage": {"enabled": "coverage" in enabled},
            "fuzzing": {"enabled": "fuzzing" in enabled},
            "stateful": {
                "enabled": "stateful" in enabled and group.has_links,
                "generation": {"mode": "positive"},  # a link is followed from a 2xx
                # The document's links only: the flows VTEX's parties follow.
                "inference": {"algorithms": []},
            },
        },
        "warnings": False,
    }


def load_schema(group: Group, options: ConformanceOptions) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(config_for(group, options))
    schema = schemathesis.openapi.from_path(options.openapi, config=config).include(tag=group.tag)
    if group.excluded is not None:  # (a second `include` would add operations, not filter)
        schema = schema.exclude(path_regex=group.excluded)
    return schema


# ----------------------------------------------------------------------------------------------
# What a run shares with its checks and hooks


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


# ----------------------------------------------------------------------------------------------
# Custom checks


def _fail(case: Case, title: str, message: str) -> None:
    raise ProtocolFailure(operation=case.operation.label, title=title, message=message)


def settle_within_authorization(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Settlements within the authorization, refunds within the settlements, no cancellation of
    a settled payment (nor settlement of a cancelled one), a repeated requestId answers alike."""
    state = _state_of(case)
    if state is None or state.group.name != "payments" or response.status_code != 200:
        return None
    body = _json(response.content)
    if not isinstance(body, dict):
        return None
    operation_id = _operation_id(case)
    if operation_id == "createPayment":
        _record_payment(state, case, body)
        return None
    kinds = {
        "settlePayment": "settleId",
        "refundPayment": "refundId",
        "cancelPayment": "cancellationId",
        "cancelPaymentAlias": "cancellationId",
    }
    id_field = kinds.get(operation_id)
    payment_id = (case.path_parameters or {}).get("paymentId")
    sent = case.body if isinstance(case.body, dict) else {}
    request_id = sent.get("requestId")
    if id_field is None or not isinstance(payment_id, str) or not isinstance(request_id, str):
        return None
    kind = "cancel" if id_field == "cancellationId" else operation_id
    answer = (body.get(id_field), body.get("value"))
    with state.lock:
        if payment_id not in state.payments:
            return None  # a payment this run never saw created: nothing is known of it
        payment = state.payments[payment_id]
        earlier = payment.answers.get((kind, request_id))
        if earlier is not None:
            if earlier != answer:
                _fail(
                    case,
                    "A repeated requestId answered differently",
                    f"requestId {request_id!r} of payment {payment_id} first answered "
                    f"{id_field}={earlier[0]!r}, value={earlier[1]!r}, now "
                    f"{id_field}={answer[0]!r}, value={answer[1]!r}: a repeated requestId "
                    "must replay the stored answer",
                )
            return None
        payment.answers[(kind, request_id)] = answer
        if answer[0] is None:
            return None  # refused: nothing happened
        value = _decimal(body.get("value")) or Decimal(0)
        if kind == "settlePayment":
            _check_settlement(case, payment, payment_id, request_id, value, sent)
        elif kind == "refundPayment":
            payment.refunded[request_id] = value
            refunded, settled = sum(payment.refunded.values()), sum(payment.settled.values())
            if payment.fresh and refunded > settled:
                _fail(
                    case,
                    "Refunded more than was settled",
                    f"payment {payment_id}: {refunded} refunded in {len(payment.refunded)} "
                    f"refund(s), only {settled} settled",
                )
        else:
            payment.cancelled.add(request_id)
            if payment.settled:
                _fail(
                    case,
                    "A settled payment was cancelled",
                    f"payment {payment_id} was settled ({sum(payment.settled.values())}), then "
                    f"cancellation {request_id!r} succeeded: a payment can only be cancelled "
                    "before it is settled",
                )
    return None


def _check_settlement(
    case: Case,
    payment: Payment,
    payment_id: str,
    request_id: str,
    value: Decimal,
    sent: Mapping[str, Any],
) -> None:
    payment.settled[request_id] = value
    found: list[Failure] = []

    def problem(title: str, message: str) -> None:
        found.append(ProtocolFailure(operation=case.operation.label, title=title, message=message))

    limit = payment.limit
    total = sum(payment.settled.values())
    if limit is not None and total > limit:
        what = "denied" if payment.status == "denied" else f"authorized for {limit}"
        problem(
            "Settled more than authorized",
            f"payment {payment_id} ({what}): {total} settled in {len(payment.settled)} "
            f"settlement(s) with distinct requestIds",
        )
    if payment.cancelled:
        problem(
            "A cancelled payment was settled",
            f"payment {payment_id} was cancelled, then settlement {request_id!r} settled {value}",
        )
    asked = _decimal(sent.get("value"))
    if asked is not None and value > asked:
        problem(
            "Settled more than asked",
            f"payment {payment_id}: settlement {request_id!r} asked {asked}, settled {value}",
        )
    if len(found) == 1:
        raise found[0]
    if found:
        raise FailureGroup(found)


def _record_payment(state: RunState, case: Case, body: Mapping[str, Any]) -> None:
    payment_id = body.get("paymentId")
    sent = case.body if isinstance(case.body, dict) else {}
    if not isinstance(payment_id, str) or sent.get("paymentId") != payment_id:
        return
    with state.lock:
        payment = state.payments[payment_id]
        value = _decimal(sent.get("value"))
        if value is not None:
            payment.values.add(value)
        max_value = _decimal(body.get("maxValue"))
        if max_value is not None:
            payment.max_value = max_value
        if isinstance(body.get("status"), str):
            payment.status = body["status"]


def idempotent_create_payment(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A POST /payments repeated keeps paymentId, tid, nsu and authorizationId; the first 200
    of each paymentId is sent again once."""
    state = _state_of(case)
    if state is None or _operation_id(case) != "createPayment" or response.status_code != 200:
        return None
    body = _json(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("paymentId"), str):
        return None
    payment_id = body["paymentId"]
    with state.lock:
        payment = state.payments[payment_id]
        replay = not payment.replayed
        payment.replayed = True
        _compare_ids(case, payment, payment_id, body, "an earlier answer")
    if not replay:
        return None
    started = time.perf_counter()
    request = response.request
    headers = {
        name: value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in dict(request.headers).items()
        if name.lower() not in {"content-length", "host"}
    }
    content = request.body if isinstance(request.body, bytes | str) else None
    try:
        again = state.http.request(
            str(request.method), str(request.url), headers=headers, content=content
        )
    except httpx.HTTPError as error:
        _fail(case, "The replay got no answer", f"POST /payments sent again: {error}")
        return None
    exchange = exchange_of_httpx(again, time.perf_counter() - started)
    with state.lock:
        state.extra[case.id].append(exchange)
    replayed = _json(again.content)
    if again.status_code != 200 or not isinstance(replayed, dict):
        _fail(
            case,
            "A repeated POST /payments failed",
            f"the same request sent again answered {again.status_code}: {again.text[:500]}",
        )
        return None
    with state.lock:
        _compare_ids(case, payment, payment_id, replayed, "the same request sent again")
    return None


def _compare_ids(
    case: Case, payment: Payment, payment_id: str, body: Mapping[str, Any], what: str
) -> None:
    ids = {name: body.get(name) for name in PAYMENT_IDS}
    if payment.ids is None:
        payment.ids = ids
        return
    changed = [
        f"{name}: {payment.ids[name]!r} -> {ids[name]!r}"
        for name in PAYMENT_IDS
        # null until the authorization, then set: allowed; set, then changed or gone: not
        if payment.ids[name] is not None and ids[name] != payment.ids[name]
    ]
    if changed:
        _fail(
            case,
            "A repeated POST /payments changed the payment's ids",
            f"payment {payment_id}, compared with {what}: " + "; ".join(changed),
        )
    for name in PAYMENT_IDS:
        if payment.ids[name] is None:
            payment.ids[name] = ids[name]


def vtex_test_suite_cards(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """With X-VTEX-API-Is-TestSuite: true, VTEX's Test Suite cards get their statuses: a new
    payment's first answer the card's, a pending one then its final status, and never a status
    the card cannot have."""
    state = _state_of(case)
    if state is None or _operation_id(case) != "createPayment" or response.status_code != 200:
        return None
    sent = case.body if isinstance(case.body, dict) else {}
    body = _json(response.content)
    card = sent.get("card")
    number = card.get("number") if isinstance(card, dict) else None
    number = number if isinstance(number, str) else None
    test_suite = (_header(dict(response.request.headers), TEST_SUITE_HEADER) or "") == "true"
    method = sent.get("paymentMethod")
    method = method if isinstance(method, str) else None
    payment_id = sent.get("paymentId")
    if not isinstance(body, dict) or not isinstance(payment_id, str):
        return None
    status = body.get("status")
    with state.lock:
        payment = state.payments[payment_id]
        if payment.first is None:
            payment.first = (number, test_suite, method)
        elif payment.first != (number, test_suite, method):
            return None  # created with another card: the answer is that payment's
        first, pending = not payment.answered, payment.pending
        payment.answered = True
        payment.pending = payment.pending or status == "undefined"
        cancelled = bool(payment.cancelled)
        fresh = payment.fresh
    statuses = TEST_SUITE_CARDS.get(number or "")
    if not test_suite or statuses is None or method not in CARD_METHODS:
        return None
    initial, later, ever = statuses
    if fresh and first:
        expected, when = frozenset({initial}), "a new payment"
    elif pending and not cancelled:
        expected, when = later, "a payment this run saw pending"
    else:
        expected, when = ever, "a payment of this card, whatever happened to it before"
    if status not in expected:
        _fail(
            case,
            "A VTEX Test Suite card did not get its status",
            f"card {number} ({method}) with {TEST_SUITE_HEADER}: true answered {status!r} for "
            f"{when} (paymentId {payment_id}); VTEX's Test Suite expects "
            + " or ".join(sorted(expected)),
        )
    return None


def agrees_with_vtex_specification(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """No unexpected difference with VTEX's specification (`homologation.vtex_specs`)."""
    state = _state_of(case)
    if state is None or state.group.protocol is None:
        return None
    method = str(response.request.method)
    path = state.vtex_path(str(response.request.url))
    body = _json(response.content)
    differences = state.specs.differences(
        state.group.protocol, method, path, response.status_code, body
    )
    template = state.specs.operation(state.group.protocol, method, path)
    if template is None:
        return None
    vtex_operation = f"{method} {template}"
    with state.lock:
        state.compared[(vtex_operation, str(response.status_code))] += 1
        unexpected = []
        for difference in differences:
            if difference.known is None:
                unexpected.append(difference.message)
                continue
            key = (vtex_operation, _shape(difference.message), difference.known)
            seen = state.known.setdefault(key, [0, difference.message])
            seen[0] += 1
        if unexpected:
            exchange = exchange_of_response(response)
            for message in unexpected:
                entries = state.unexpected[(vtex_operation, _shape(message))]
                if len(entries) < EXCHANGES_PER_FAILURE:
                    entries.append((message, exchange))
    if unexpected:
        _fail(
            case,
            "The answer differs from VTEX's specification",
            f"VTEX's {vtex_operation} ({response.status_code}):\n" + "\n".join(unexpected),
        )
    return None


def _shape(message: str) -> str:
    """A difference without the offending value, to group alike ones (a missing property's
    name stays)."""
    return re.sub(r"^([^:]*): .*? (is not of type|is not one of)", r"\1: … \2", message)


CUSTOM_CHECKS: tuple[Callable[..., bool | None], ...] = (
    settle_within_authorization,
    idempotent_create_payment,
    vtex_test_suite_cards,
    agrees_with_vtex_specification,
)


def _register_checks() -> None:
    """Register the custom checks (idempotent). They only act on this module's runs."""
    for check in CUSTOM_CHECKS:
        schemathesis.check(check)


# ----------------------------------------------------------------------------------------------
# Fixtures: what realistic requests are made on


def _fresh() -> str:
    return uuid.uuid4().hex.upper()


def payment_body(
    payment_id: str, value: float, card: str | None = "4444333322221111"
) -> dict[str, Any]:
    """A POST /payments body as VTEX's gateway sends it (card None: a bank invoice)."""
    transaction = uuid.uuid5(uuid.NAMESPACE_OID, payment_id).hex.upper()
    return {
        "reference": payment_id[:10],
        "orderId": f"v{payment_id[:8]}hml-01",
        "transactionId": transaction,
        "paymentId": payment_id,
        "paymentMethod": "Visa" if card else "BankInvoice",
        "card": {
            "holder": "John Doe" if card else None,
            "number": card,
            "csc": "123" if card else None,
            "expiration": {"month": "12" if card else None, "year": "2030" if card else None},
        },
        "value": value,
        "currency": "BRL",
        "installments": 1,
        "callbackUrl": CALLBACK_URL.format(transaction=transaction, payment=payment_id),
    }


class FixtureMaker:
    """Plain HTTP calls, each a check of the fixtures scenario."""

    def __init__(self, state: RunState, scenario: Scenario) -> None:
        self.state = state
        self.scenario = scenario
        options = state.options
        self.base = options.base_url.rstrip("/")

    def call(
        self, name: str, method: str, url: str, headers: Mapping[str, str], body: Any = None
    ) -> Any:
        """The JSON answer, or None (then a failed check says why)."""
        started = time.perf_counter()
        try:
            response = self.state.http.request(
                method, self.base + url, headers=dict(headers), json=body
            )
        except httpx.HTTPError as error:
            self.scenario.failed(name, f"{type(error).__name__}: {error}")
            return None
        exchange = exchange_of_httpx(response, time.perf_counter() - started)
        self.scenario.exchanges.append(exchange)
        answer = _json(response.content)
        if response.status_code != 200 or not isinstance(answer, dict):
            self.scenario.failed(
                name,
                f"answered {response.status_code}; the requests meant for it are sent anyway",
                exchange,
            )
            return None
        self.scenario.passed(name, exchange.summary)
        return answer


def make_fixtures(state: RunState) -> Scenario | None:
    """What about half of the fuzzed requests are made on: a payment, a card, an analysis."""
    group = state.group
    if group.name not in ("payments", "giftcards", "antifraud"):
        return None
    phases = set(state.options.phases) & {"fuzzing", "stateful"}
    if not phases:
        return None
    scenario = Scenario(SUITE, f"{group.name}: fixtures", "what realistic requests are made on")
    started = time.monotonic()
    maker = FixtureMaker(state, scenario)
    key, token = state.options.app_key, state.options.app_token
    fixtures = state.fixtures
    if group.name == "payments":
        headers = {
            "X-VTEX-API-AppKey": key,
            "X-VTEX-API-AppToken": token,
            TEST_SUITE_HEADER: "true",
        }
        for attribute, what in (
            ("payment_id", "settle and refund"),
            ("cancel_payment_id", "cancel"),
        ):
            payment_id = _fresh()
            answer = maker.call(
                f"an approved payment to {what}",
                "POST",
                "/payment-provider/payments",
                headers,
                payment_body(payment_id, 1000.0),
            )
            if answer is not None and answer.get("status") == "approved":
                setattr(fixtures, attribute, payment_id)
                with state.lock:
                    payment = state.payments[payment_id]
                    payment.fresh = True
                    payment.values.add(Decimal("1000.0"))
                    payment.status = "approved"
                    payment.ids = {name: answer.get(name) for name in PAYMENT_IDS}
                    payment.first = ("4444333322221111", True, "Visa")
                    payment.replayed = True
    elif group.name == "giftcards":
        headers = {"X-PROVIDER-API-AppKey": key, "X-PROVIDER-API-AppToken": token}
        card = maker.call(
            "a card",
            "POST",
            "/giftcard/giftcards",
            headers,
            {"relationName": f"homologation-{_fresh()[:8]}", "caption": "homologation"},
        )
        if card is not None and isinstance(card.get("id"), str):
            fixtures.card_id = card["id"]
            fixtures.card_token = card.get("redemptionToken")
            fixtures.card_code = card.get("redemptionCode")
            credited = maker.call(
                f"{CARD_CREDIT} loaded on it",
                "POST",
                f"/giftcard/giftcards/{fixtures.card_id}/transactions",
                headers,
                {"operation": "Credit", "value": CARD_CREDIT, "requestId": _fresh()},
            )
            for attribute, what in (
                ("settle_transaction_id", "settle"),
                ("cancel_transaction_id", "cancel"),
            ):
                debit = credited and maker.call(
                    f"a Debit of {CARD_DEBIT} on it, to {what}",
                    "POST",
                    f"/giftcard/giftcards/{fixtures.card_id}/transactions",
                    headers,
                    {
                        "operation": "Debit",
                        "value": CARD_DEBIT,
                        "requestId": _fresh(),
                        "redemptionToken": fixtures.card_token,
                        "redemptionCode": fixtures.card_code,
                        "description": "homologation",
                    },
                )
                if isinstance(debit, dict) and isinstance(debit.get("id"), str):
                    setattr(fixtures, attribute, debit["id"])
    else:
        headers = {"X-PROVIDER-API-AppKey": key, "X-PROVIDER-API-AppToken": token}
        analysis_id = _fresh()
        answer = maker.call(
            "an analysis to read, update and stop",
            "POST",
            "/antifraud/transactions",
            headers,
            {"id": analysis_id, "value": 100, "reference": "homologation"},
        )
        if answer is not None:
            fixtures.analysis_id = analysis_id
    scenario.seconds = time.monotonic() - started
    return scenario


# ----------------------------------------------------------------------------------------------
# Generation hooks: about half of the fuzzed and stateful requests made realistic

_TEST_SUITE_FLOWS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("Visa", {"number": "4444333322221111"}),
    ("Mastercard", {"number": "4444333322221112"}),
    ("Visa", {"number": "4222222222222224"}),
    ("Visa", {"number": "4222222222222225"}),
    ("BankInvoice", None),
    # The Test Suite's redirect case: a card whose members are all null.
    ("Visa", {"number": None}),
)
_AMOUNTS = st.integers(min_value=1, max_value=200_000).map(lambda cents: cents / 100)
_AMOUNTS_UP_TO_300 = st.integers(min_value=1, max_value=30_000).map(lambda cents: cents / 100)
_AMOUNTS_FROM_1 = st.integers(min_value=100, max_value=5_000).map(lambda cents: cents / 100)
_CENTS = st.integers(min_value=1, max_value=100).map(lambda cents: cents / 100)
_IDS = st.uuids().map(lambda value: value.hex.upper())


def _phase(case: Case) -> str | None:
    return case.meta.phase.name.value if case.meta is not None else None


def _realistic_payment(case: Case, mint: Callable[[str], str]) -> st.SearchStrategy[Case]:
    def build(flow: int, value: float, drawn: str) -> Case:
        payment_id = mint(drawn)
        method, card = _TEST_SUITE_FLOWS[flow]
        body = payment_body(payment_id, value, None)
        body["paymentMethod"] = method
        if card is not None and card["number"] is not None:
            body["card"] = payment_body(payment_id, value, card["number"])["card"]
        case.body = body
        case.headers[TEST_SUITE_HEADER] = "true"
        return case

    flows = st.integers(min_value=0, max_value=len(_TEST_SUITE_FLOWS) - 1)
    return st.builds(build, flows, _AMOUNTS, _IDS)


def _realistic_operation(
    case: Case, payment_id: str | None, with_value: bool, derive: Derive
) -> st.SearchStrategy[Case]:
    def build(value: float, drawn: str) -> Case:
        if payment_id is not None and _phase(case) != "stateful":
            case.path_parameters = {**(case.path_parameters or {}), "paymentId": payment_id}
        body: dict[str, Any] = dict(case.body) if isinstance(case.body, dict) else {}
        target = (case.path_parameters or {}).get("paymentId")
        body.update({"requestId": derive(case.operation.label, target, value, drawn)})
        body["paymentId"] = None  # the path's is authoritative
        if with_value:
            body["value"] = value
        case.body = body
        return case

    return st.builds(build, _AMOUNTS_UP_TO_300, _IDS)


def _giftcard_case(
    case: Case, fixtures: Fixtures, operation_id: str, derive: Derive
) -> st.SearchStrategy[Case]:
    def build(value: float, cents: float, drawn: str, debit: bool) -> Case:
        stateful = _phase(case) == "stateful"
        parameters = dict(case.path_parameters or {})
        if not stateful and "giftCardId" in parameters and fixtures.card_id:
            parameters["giftCardId"] = fixtures.card_id
            transaction = (
                fixtures.cancel_transaction_id
                if operation_id.endswith("Cancellations") or operation_id.startswith("cancel")
                else fixtures.settle_transaction_id
            )
            if "transactionId" in parameters and transaction:
                parameters["transactionId"] = transaction
        if stateful and operation_id == "createGiftCardTransaction" and fixtures.card_id:
            parameters["giftCardId"] = fixtures.card_id  # a root of the flow: on the funded card
        case.path_parameters = parameters
        body: dict[str, Any] = dict(case.body) if isinstance(case.body, dict) else {}
        request_id = derive(operation_id, parameters, value, cents, drawn, debit)
        if operation_id == "createGiftCardTransaction":
            on_card = parameters.get("giftCardId") == fixtures.card_id
            body.update({"value": value, "requestId": request_id})
            body["operation"] = "Debit" if debit and on_card else "Credit"
            if on_card:
                body["redemptionToken"] = fixtures.card_token
                body["redemptionCode"] = fixtures.card_code
        elif operation_id in ("settleGiftCardTransaction", "cancelGiftCardTransaction"):
            # Less than any Debit made here: a settlement or cancellation that can be done.
            body.update({"value": cents, "requestId": request_id})
        elif operation_id == "searchGiftCards":
            body = {**body, "cart": {"redemptionCode": fixtures.card_code}}
        elif operation_id == "createGiftCard":
            body.update({"relationName": f"homologation-{request_id[:8]}", "caption": "fuzz"})
        case.body = body
        return case

    return st.builds(build, _AMOUNTS_FROM_1, _CENTS, _IDS, st.booleans())


def _antifraud_case(case: Case, fixtures: Fixtures, derive: Derive) -> st.SearchStrategy[Case]:
    def build(drawn: str) -> Case:
        parameters = dict(case.path_parameters or {})
        if "transactionId" in parameters and _phase(case) != "stateful" and fixtures.analysis_id:
            parameters["transactionId"] = fixtures.analysis_id
            case.path_parameters = parameters
        if isinstance(case.body, dict):
            if "transactionId" in parameters:
                case.body = {**case.body, "id": parameters["transactionId"]}
            else:  # a new analysis
                case.body = {**case.body, "id": derive("analysis", drawn)}
        return case

    return st.builds(build, _IDS)


def add_hooks(schema: schemathesis.BaseSchema, state: RunState) -> None:
    """Make about half of the fuzzed and stateful requests realistic (module docstring)."""
    fixtures = state.fixtures
    group = state.group.name

    def realistic(case: Case) -> st.SearchStrategy[Case] | None:
        operation_id = _operation_id(case)
        if group == "payments":
            if operation_id == "createPayment":
                return _realistic_payment(case, state.mint_payment_id)
            if operation_id in ("settlePayment", "refundPayment"):
                return _realistic_operation(case, fixtures.payment_id, True, state.derive)
            if operation_id in ("cancelPayment", "cancelPaymentAlias"):
                return _realistic_operation(case, fixtures.cancel_payment_id, False, state.derive)
        elif group == "giftcards":
            return _giftcard_case(case, fixtures, operation_id, state.derive)
        elif group == "antifraud":
            return _antifraud_case(case, fixtures, state.derive)
        return None

    @schema.hook("flatmap_case")
    def half_realistic(context: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Case]:
        strategy = realistic(case)
        if strategy is None:
            return st.just(case)
        chosen = strategy
        return st.booleans().flatmap(lambda yes: chosen if yes else st.just(case))


# ----------------------------------------------------------------------------------------------
# From events to scenarios


@dataclass
class OperationResult:
    """One operation in one phase."""

    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # (check, title) -> messages, reproductions and exchanges of the first occurrences
    failures: dict[tuple[str, str], list[tuple[str, str, list[Exchange]]]] = field(
        default_factory=dict
    )
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentedLink:
    source: str
    name: str
    target: str
    parameters: Mapping[str, str]
    request_body: Any


@dataclass
class Link:
    source: str
    name: str
    target: str
    inferred: bool
    statuses: Counter[int] = field(default_factory=Counter)


class Collector:
    """Reads the engine's events into per-phase, per-operation results."""

    def __init__(self, state: RunState, schema: schemathesis.BaseSchema) -> None:
        self.state = state
        self.results: dict[str, dict[str, OperationResult]] = {phase: {} for phase in PHASES}
        self.phase_errors: defaultdict[str, list[str]] = defaultdict(list)
        self.phase_seconds: defaultdict[str, float] = defaultdict(float)
        self.phase_started: dict[str, float] = {}
        self.ran: set[str] = set()
        self.skipped_phases: dict[str, str] = {}
        self.links: dict[tuple[str, str, str], Link] = {}
        self.fatal: str | None = None
        self.labels: dict[str, str] = {}  # label -> operationId, in document order
        self.documented_links: list[DocumentedLink] = []
        self.operations: dict[str, Any] = {}  # operationId -> APIOperation
        self.walked: list[tuple[DocumentedLink, Check]] = []  # what LinkWalker followed
        for result in schema.get_all_operations():
            if not isinstance(result, Ok):
                continue  # an operation Schemathesis cannot use: it reports it itself
            operation = result.ok()
            raw = operation.definition.raw
            operation_id = str(raw.get("operationId", operation.label))
            self.labels[operation.label] = operation_id
            self.operations[operation_id] = operation
            for response in raw.get("responses", {}).values():
                for name, link in (response.get("links") or {}).items():
                    self.documented_links.append(
                        DocumentedLink(
                            operation_id,
                            name,
                            str(link.get("operationId")),
                            dict(link.get("parameters") or {}),
                            link.get("requestBody"),
                        )
                    )

    def _result(self, phase: str, label: str) -> OperationResult:
        return self.results[phase].setdefault(label, OperationResult())

    def handle(self, event: events.EngineEvent) -> None:
        if isinstance(event, events.PhaseStarted):
            self.phase_started[event.phase.name.value] = event.timestamp
        elif isinstance(event, events.PhaseFinished):
            phase = event.phase.name.value
            if phase in PHASES:
                self.phase_seconds[phase] += event.timestamp - self.phase_started.get(
                    phase, event.timestamp
                )
                if event.status == Status.SKIP and phase not in self.ran:
                    reason = event.phase.skip_reason
                    self.skipped_phases[phase] = reason.value if reason else "skipped"
                else:
                    self.ran.add(phase)
        elif isinstance(event, events.ScenarioFinished):
            self._scenario(event)
        elif isinstance(event, events.NonFatalError):
            phase = event.phase.value if event.phase is not None else "engine"
            self.phase_errors[phase].append(
                f"{event.label}: {event.info.title}: {event.info.message}"
            )
        elif isinstance(event, events.FatalError):
            self.fatal = f"{type(event.exception).__name__}: {event.exception}"

    def _scenario(self, event: events.ScenarioFinished) -> None:
        phase = event.phase.value
        if phase not in PHASES:
            return
        self.ran.add(phase)
        recorder = event.recorder
        if event.status == Status.SKIP and not recorder.cases:
            if event.label:
                result = self._result(phase, event.label)
                result.skipped = event.skip_reason or "skipped"
            return
        reported: set[str] = set()
        for case_id, node in recorder.cases.items():
            case = node.value
            label = case.operation.label
            result = self._result(phase, label)
            if node.parent_id is not None and node.transition is None:
                continue  # a probe a check sent (no auth, a replay...): its parent counts
            interaction = recorder.interactions.get(case_id)
            if interaction is None or interaction.response is None:
                if interaction is not None:
                    result.errors.append(f"no answer to {interaction.request.method} "
                                         f"{interaction.request.uri}")  # fmt: skip
                continue
            result.cases += 1
            result.statuses[interaction.response.status_code] += 1
            if node.transition is not None and node.parent_id is not None:
                self._link(recorder, node.parent_id, node.transition, label,
                           interaction.response.status_code)  # fmt: skip
        for case_id, checks in recorder.checks.items():
            checked = recorder.cases.get(case_id)
            if checked is None:
                continue
            label = checked.value.operation.label
            for check in checks:
                if check.status != Status.FAILURE or check.failure_info is None:
                    continue
                failure = check.failure_info.failure
                key = (check.name, failure.title)
                entries = self._result(phase, label).failures.setdefault(key, [])
                signature = f"{label}|{check.name}|{failure.title}|{failure.message}"
                if len(entries) >= EXCHANGES_PER_FAILURE or signature in reported:
                    continue
                reported.add(signature)
                evidence = []
                failing_case = failure.case_id or case_id
                for exchange_case in dict.fromkeys([case_id, failing_case]):
                    exchange = exchange_of(recorder, exchange_case)
                    if exchange is not None:
                        evidence.append(exchange)
                    with self.state.lock:
                        evidence.extend(self.state.extra.get(exchange_case, []))
                entries.append((failure.message, check.failure_info.code_sample, evidence))

    def _link(
        self,
        recorder: ScenarioRecorder,
        parent_id: str,
        transition: Any,
        target_label: str,
        status: int,
    ) -> None:
        parent = recorder.cases.get(parent_id)
        if parent is None:
            return
        source = self.labels.get(parent.value.operation.label, parent.value.operation.label)
        target = self.labels.get(target_label, target_label)
        match = re.search(r"\] (.+?) -> ", str(transition.id))
        name = match.group(1) if match else str(transition.id)
        key = (source, name, target)
        link = self.links.setdefault(key, Link(source, name, target, bool(transition.is_inferred)))
        link.statuses[status] += 1

    # ------------------------------------------------------------------------------------------

    def scenarios(self) -> list[Scenario]:
        group = self.state.group
        result = []
        for phase in self.state.options.phases:
            scenario = Scenario(
                SUITE, f"{group.name}: {phase}", f"openapi.yaml, Schemathesis' {phase} phase"
            )
            scenario.seconds = self.phase_seconds[phase]
            if self.fatal is not None:
                scenario.error = self.fatal
            if phase == "stateful" and not group.has_links:
                scenario.skipped("stateful phase", "the document links none of these operations")
                result.append(scenario)
                continue
            if phase in self.skipped_phases and phase not in self.ran:
                scenario.skipped(f"{phase} phase", f"not run: {self.skipped_phases[phase]}")
            self._operation_checks(scenario, phase)
            errors = self.phase_errors.get(phase, [])
            if not result:  # the first scenario also says what went wrong outside the phases
                errors = [*self.phase_errors.get("engine", []), *errors]
            for error in errors:
                scenario.failed("Schemathesis reported an error", error)
            if phase == "stateful" and phase in self.ran:
                self._links_check(scenario)
            result.append(scenario)
        return result

    def _operation_checks(self, scenario: Scenario, phase: str) -> None:
        results = self.results[phase]
        for label in self.labels:
            found = results.get(label)
            if found is None:
                if phase != "stateful" and phase in self.ran:
                    scenario.skipped(label, "no request was generated")
                continue
            if found.cases == 0 and not found.failures:
                scenario.skipped(label, found.skipped or "no request was sent")
                continue
            statuses = ", ".join(f"{code}×{n}" for code, n in sorted(found.statuses.items()))
            summary = f"{found.cases} requests ({statuses})"
            if not found.failures and not found.errors:
                scenario.passed(label, summary)
                continue
            lines = [summary]
            evidence: list[Exchange] = []
            for (check, title), entries in found.failures.items():
                for message, code_sample, exchanges in entries:
                    lines += ["", f"[{check}] {title}", message.strip()]
                    if code_sample:
                        lines += ["Reproduce with:", code_sample.strip()]
                    evidence += [e for e in exchanges if e not in evidence]
            lines += [f"[network] {error}" for error in found.errors[:EXCHANGES_PER_FAILURE]]
            scenario.failed(label, "\n".join(lines), *evidence)

    def _links_check(self, scenario: Scenario) -> None:
        name = "OpenAPI links followed"
        followed = {(link.source, link.target) for link in self.links.values()}
        walked = {(item.source, item.target) for item, _ in self.walked}
        lines = []
        for link in sorted(self.links.values(), key=lambda item: (item.inferred, item.source)):
            statuses = ", ".join(f"{code}×{n}" for code, n in sorted(link.statuses.items()))
            kind = "inferred" if link.inferred else "link"
            lines.append(f"{link.source} -> {link.target} ({kind} {link.name}): {statuses}")
        for walked_link, check in self.walked:
            lines.append(
                f"{walked_link.source} -> {walked_link.target} (link {walked_link.name}): "
                f"by the link walk ({check.outcome.value})"
            )
        followed |= walked
        documented = {(item.source, item.target) for item in self.documented_links}
        not_followed = sorted(documented - followed)
        if not_followed:
            lines.append("not followed: " + ", ".join(f"{s} -> {t}" for s, t in not_followed))
        required = [
            pair for pair in REQUIRED_LINKS.get(self.state.group.name, ()) if pair in documented
        ]
        missing = [pair for pair in required if pair not in followed]
        detail = "\n".join(lines) or "no link was followed"
        if missing:
            scenario.failed(
                name,
                "never followed: "
                + ", ".join(f"{source} -> {target}" for source, target in missing)
                + "\n"
                + detail,
            )
        else:
            scenario.passed(name, detail)
        for _, check in self.walked:
            scenario.add(check)


# ----------------------------------------------------------------------------------------------
# The links the stateful phase did not follow, followed once


class WalkFailed(Exception):
    pass


class LinkWalker:
    """Follows each of `REQUIRED_LINKS` the stateful phase did not follow to a 2xx (its walk is
    random): a realistic request to the link's source, then the target with the parameters the
    link takes from that answer. Every answer goes through the checks of the phases."""

    def __init__(self, state: RunState, collector: Collector) -> None:
        self.state = state
        self.collector = collector
        self.base = state.options.base_url.rstrip("/") + state.group.mount
        self.checks: list[Callable[..., bool | None]] = [
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
            *CUSTOM_CHECKS,
        ]

    def walk(self) -> None:
        followed = {
            (link.source, link.target)
            for link in self.collector.links.values()
            if any(200 <= status < 300 for status in link.statuses)
        }
        for source, target in REQUIRED_LINKS.get(self.state.group.name, ()):
            if (source, target) in followed:
                continue
            link = next(
                (
                    item
                    for item in self.collector.documented_links
                    if (item.source, item.target) == (source, target)
                ),
                None,
            )
            if link is None:
                continue
            check = Check(f"{source} -> {target} (link {link.name})", Outcome.PASSED)
            try:
                detail = self._follow(link, check.exchanges)
            except WalkFailed as error:
                check.outcome, detail = Outcome.FAILED, str(error)
            except httpx.HTTPError as error:
                check.outcome, detail = Outcome.FAILED, f"{type(error).__name__}: {error}"
            check.detail = f"not followed to a 2xx by the stateful phase; followed once: {detail}"
            self.collector.walked.append((link, check))

    # -- the requests

    def _headers(self) -> dict[str, str]:
        options, group = self.state.options, self.state.group
        if group.name == "payments":
            return {
                "X-VTEX-API-AppKey": options.app_key,
                "X-VTEX-API-AppToken": options.app_token,
                TEST_SUITE_HEADER: "true",
            }
        return {
            "X-PROVIDER-API-AppKey": options.app_key,
            "X-PROVIDER-API-AppToken": options.app_token,
        }

    def send(
        self,
        operation_id: str,
        parameters: Mapping[str, str],
        body: Any,
        exchanges: list[Exchange],
    ) -> httpx.Response:
        """One request, checked; a non-2xx answer or a failed check ends the walk."""
        operation = self.collector.operations[operation_id]
        path = operation.path
        for name, value in parameters.items():
            path = path.replace("{" + name + "}", str(value))
        started = time.perf_counter()
        response = self.state.http.request(
            operation.method.upper(),
            self.base + path,
            headers=self._headers(),
            json=body,
        )
        exchange = exchange_of_httpx(response, time.perf_counter() - started)
        exchanges.append(exchange)
        case = operation.Case(
            path_parameters=dict(parameters) or None,
            body=body,
            media_type="application/json" if body is not None else None,
            headers=self._headers(),
        )
        try:
            case.validate_response(response, checks=self.checks)
        except (AssertionError, BaseExceptionGroup) as error:
            raise WalkFailed(f"{exchange.summary}: {error}") from error
        if not 200 <= response.status_code < 300:
            raise WalkFailed(f"{exchange.summary}: {response.text[:500]}")
        return response

    def _source(
        self, link: DocumentedLink, exchanges: list[Exchange]
    ) -> tuple[dict[str, str], Any, httpx.Response]:
        """A realistic request to the link's source (and what it needs first)."""
        state, fixtures = self.state, self.state.fixtures
        fresh = state.derive("walk", link.source, link.target)
        if link.source == "createPayment":
            body = payment_body(state.mint_payment_id(fresh), 100.0)
            return {}, body, self.send("createPayment", {}, body, exchanges)
        if link.source == "settlePayment":
            payment_id = state.mint_payment_id(fresh)
            self.send("createPayment", {}, payment_body(payment_id, 100.0), exchanges)
            parameters = {"paymentId": payment_id}
            body = {"value": 40.0, "requestId": state.derive(fresh, "settle")}
            return parameters, body, self.send("settlePayment", parameters, body, exchanges)
        if link.source in ("createGiftCardTransaction", "settleGiftCardTransaction"):
            if not fixtures.card_id:
                raise WalkFailed("no card to make a transaction on (see the fixtures)")
            parameters = {"giftCardId": fixtures.card_id}
            debit = {
                "operation": "Debit",
                "value": 10,
                "requestId": state.derive(fresh, "debit"),
                "redemptionToken": fixtures.card_token,
                "redemptionCode": fixtures.card_code,
                "description": "homologation",
            }
            answer = self.send("createGiftCardTransaction", parameters, debit, exchanges)
            if link.source == "createGiftCardTransaction":
                return parameters, debit, answer
            parameters = {**parameters, "transactionId": str(answer.json()["id"])}
            body = {"value": 4, "requestId": state.derive(fresh, "settle")}
            return parameters, body, self.send(link.source, parameters, body, exchanges)
        if link.source == "antifraudSendTransaction":
            body = {"id": fresh, "value": 100, "reference": "homologation"}
            return {}, body, self.send(link.source, {}, body, exchanges)
        raise WalkFailed(f"no realistic request for {link.source}")

    def _target_body(self, link: DocumentedLink, source_body: Any, fresh: str) -> Any:
        if link.request_body == "$request.body":
            return source_body
        return {
            "settlePayment": {"value": 10.0, "requestId": fresh},
            "refundPayment": {"value": 5.0, "requestId": fresh},
            "cancelPayment": {"requestId": fresh},
            "settleGiftCardTransaction": {"value": 1, "requestId": fresh},
            "cancelGiftCardTransaction": {"value": 1, "requestId": fresh},
        }.get(link.target)

    def _follow(self, link: DocumentedLink, exchanges: list[Exchange]) -> str:
        parameters, source_body, answer = self._source(link, exchanges)
        values: dict[str, str] = {}
        for name, expression in link.parameters.items():
            if expression.startswith("$request.path."):
                values[name] = parameters[expression.removeprefix("$request.path.")]
            elif expression.startswith("$response.body#/"):
                node: Any = answer.json()
                for part in expression.removeprefix("$response.body#/").split("/"):
                    node = node[part]
                values[name] = str(node)
            else:
                raise WalkFailed(f"unsupported link expression {expression!r}")
        fresh = self.state.derive("walk", link.source, link.target, "target")
        body = self._target_body(link, source_body, fresh)
        self.send(link.target, values, body, exchanges)
        return f"{len(exchanges)} requests, every answer a 2xx that passed the checks"


# ----------------------------------------------------------------------------------------------
# The comparison with VTEX's specification


def specification_scenario(state: RunState) -> Scenario:
    scenario = Scenario(
        SUITE,
        f"{state.group.name}: VTEX specification",
        f"every answer against VTEX's {state.group.name} specification (homologation/vtex_specs)",
    )
    by_operation: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for (operation, status), count in state.compared.items():
        by_operation[operation][status] += count
    for operation, statuses in sorted(by_operation.items()):
        summary = ", ".join(f"{status}×{n}" for status, n in sorted(statuses.items()))
        name = f"VTEX's {operation}"
        unexpected = [
            (shape, entries)
            for (vtex_operation, shape), entries in state.unexpected.items()
            if vtex_operation == operation
        ]
        if not unexpected:
            scenario.passed(name, f"{sum(statuses.values())} answers compared ({summary})")
            continue
        lines = [f"{sum(statuses.values())} answers compared ({summary}); unexpected:"]
        evidence: list[Exchange] = []
        for _, entries in unexpected:
            lines += [f"  {message}" for message, _ in entries[:1]]
            evidence += [exchange for _, exchange in entries if exchange not in evidence]
        scenario.failed(name, "\n".join(lines), *evidence)
    for (operation, shape, reason), (count, example) in sorted(state.known.items()):
        scenario.add(
            Check(
                f"known deviation: {operation} {shape.split(':', 1)[0]}",
                Outcome.PASSED,
                f"{reason}\n{count} answers, e.g. {example}",
            )
        )
    if not scenario.checks:
        scenario.skipped("answers compared", "no answer of an operation VTEX's document has")
    return scenario


if __name__ == "__main__":
    # The module proper, not this `__main__` copy: the job's objects are the module's.
    from homologation import conformance

    conformance._worker(Path(sys.argv[1]), Path(sys.argv[2]))
