"""What a run is configured with: the options, the protocols' groups of operations, the checks
left out and the links the stateful phase must follow."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import schemathesis

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
    in_repository = Path(__file__).resolve().parents[2] / "openapi.yaml"
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
