"""What a homologation run found: scenarios made of checks, each failure with the HTTP exchanges
that prove it. The console, JUnit and HTML renderings all read this one model."""

from __future__ import annotations

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


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        name: ("***" if name.lower() in SECRET_HEADERS and value else value)
        for name, value in headers.items()
    }


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
        self.request_body = clip(self.request_body)
        self.response_body = clip(self.response_body)

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
