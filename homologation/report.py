"""What a homologation run found: scenarios made of checks, each failure with the HTTP exchanges
that prove it. The console, JUnit and HTML renderings all read this one model."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

# Headers whose values never reach a report: a report is shared, credentials are not.
SECRET_HEADERS = frozenset(
    {
        "x-vtex-api-apptoken",
        "x-provider-api-apptoken",
        "authorization",
        "cookie",
        "set-cookie",
    }
)
BODY_LIMIT = 20_000  # characters of a body kept in a report
# A report never holds a full card number or a security code, not even a test card's.
CARD_NUMBER = re.compile(r"(?<!\d)\d{13,19}(?!\d)")
SECURITY_CODE_KEYS = frozenset({"csc", "cvv", "cvc", "cvv2", "securitycode"})
CARD_NUMBER_KEYS = frozenset({"number", "cardnumber", "pan"})
# A security code inside free text (a curl command's JSON): "csc": "987".
SECURITY_CODE_TEXT = re.compile(r'("(?:csc|cvv|cvc|cvv2|securityCode)"\s*:\s*)"[^"]*"', re.I)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: ("***" if name.lower() in SECRET_HEADERS and value else value)
        for name, value in headers.items()
    }


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _mask_numbers(text: str) -> str:
    """Digit runs that could be card numbers (13 to 19 digits passing Luhn's check)."""

    def masked(match: re.Match[str]) -> str:
        digits = match.group()
        return f"{digits[:6]}******{digits[-4:]}" if _luhn_valid(digits) else digits

    return CARD_NUMBER.sub(masked, text)


def _mask_field(key: str, item: Any) -> Any:
    if key in SECURITY_CODE_KEYS and item:
        return "***"
    if key in CARD_NUMBER_KEYS and isinstance(item, str) and item.isascii() and item.isdigit():
        return f"{item[:6]}******{item[-4:]}" if len(item) >= 12 else item
    return _mask(item)


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _mask_field(key.lower(), item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, str):
        return _mask_numbers(value)
    return value


def mask_card_data(text: str | None) -> str | None:
    """Card numbers as their first six and last four digits, security codes as `***`."""
    if not text:
        return text
    try:
        return json.dumps(_mask(json.loads(text)), ensure_ascii=False)
    except ValueError:
        return mask_text(text)


def mask_text(text: str) -> str:
    """Card data in free text (a curl command, a message): Luhn-valid numbers and codes."""
    return SECURITY_CODE_TEXT.sub(r'\1"***"', _mask_numbers(text))


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= BODY_LIMIT:
        return text
    return f"{text[:BODY_LIMIT]}… ({len(text) - BODY_LIMIT} more characters)"


@dataclass
class Exchange:
    """One HTTP request and what came back (or why nothing did)."""

    method: str
    url: str
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str | None = None
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: str | None = None
    elapsed_seconds: float | None = None
    error: str | None = None  # a transport error instead of a response

    def __post_init__(self) -> None:
        self.request_headers = redact_headers(self.request_headers)
        self.response_headers = redact_headers(self.response_headers)
        self.request_body = clip(mask_card_data(self.request_body))
        self.response_body = clip(mask_card_data(self.response_body))

    @property
    def summary(self) -> str:
        outcome = self.error or f"{self.status}"
        elapsed = (
            "" if self.elapsed_seconds is None else f" in {self.elapsed_seconds * 1000:.0f} ms"
        )
        return f"{self.method} {self.url} -> {outcome}{elapsed}"

    def as_text(self) -> str:
        lines = [f"> {self.method} {self.url}"]
        lines += [f"> {name}: {value}" for name, value in self.request_headers.items()]
        if self.request_body:
            lines += [">", *(f"> {line}" for line in self.request_body.splitlines())]
        if self.error is not None:
            lines.append(f"< (no response: {self.error})")
            return "\n".join(lines)
        elapsed = "" if self.elapsed_seconds is None else f" ({self.elapsed_seconds * 1000:.0f} ms)"
        lines.append(f"< {self.status}{elapsed}")
        lines += [f"< {name}: {value}" for name, value in self.response_headers.items()]
        if self.response_body:
            lines += ["<", *(f"< {line}" for line in self.response_body.splitlines())]
        return "\n".join(lines)


@dataclass
class Check:
    """One expectation: passed, failed (with why and the evidence) or skipped (with why)."""

    name: str
    outcome: Outcome
    detail: str = ""
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.detail = mask_text(self.detail)

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED


@dataclass
class Scenario:
    """A named sequence of calls with its expectations, e.g. VTEX's "Async Approved" case."""

    suite: str  # payments | antifraud | giftcards | conformance
    name: str
    stands_for: str = ""  # the VTEX Test Suite case (or other source) this scenario replays
    checks: list[Check] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)  # every call made, in order
    seconds: float = 0.0
    error: str | None = None  # an unexpected exception that ended the scenario early

    @property
    def outcome(self) -> Outcome:
        if self.error is not None or any(check.failed for check in self.checks):
            return Outcome.FAILED
        if self.checks and all(check.outcome is Outcome.SKIPPED for check in self.checks):
            return Outcome.SKIPPED
        return Outcome.PASSED

    def passed(self, name: str, detail: str = "") -> Check:
        return self.add(Check(name, Outcome.PASSED, detail))

    def failed(self, name: str, detail: str, *evidence: Exchange) -> Check:
        return self.add(Check(name, Outcome.FAILED, detail, list(evidence)))

    def skipped(self, name: str, detail: str) -> Check:
        return self.add(Check(name, Outcome.SKIPPED, detail))

    def expect(self, condition: bool, name: str, detail: str = "", *evidence: Exchange) -> bool:
        """Record `name` as passed when `condition` holds, else as failed with `detail`."""
        if condition:
            self.passed(name)
        else:
            self.failed(name, detail or name, *evidence)
        return condition

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check


@dataclass
class Report:
    target: str
    suites: list[str]
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # how the run was configured

    @property
    def failed(self) -> bool:
        return any(scenario.outcome is Outcome.FAILED for scenario in self.scenarios)

    def counts(self) -> dict[Outcome, int]:
        counts = dict.fromkeys(Outcome, 0)
        for scenario in self.scenarios:
            counts[scenario.outcome] += 1
        return counts

    def by_suite(self) -> Iterator[tuple[str, list[Scenario]]]:
        for suite in dict.fromkeys(scenario.suite for scenario in self.scenarios):
            yield suite, [scenario for scenario in self.scenarios if scenario.suite == suite]
