"""`homologation.conformance` against the service (`connector serve` on a fresh SQLite database,
as a deployment runs it) and against deliberately broken builds of it: a proxy in front of it
that rewrites some answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from homologation.conformance import PHASES, SUITES, ConformanceOptions, run_conformance
from homologation.conformance.config import DEFAULT_OPENAPI, groups_for
from homologation.conformance.runner import run_group
from homologation.local import LocalService
from homologation.report import Check, Outcome, Scenario
from homologation.vtex_specs import VtexSpecs
from tests.homologation.conftest import Rewrite, broken, new_tid_on_replay


@pytest.fixture(scope="module")
def local(sqlite_service: LocalService) -> LocalService:
    return sqlite_service


def options(local: LocalService, url: str | None = None, **overrides: Any) -> ConformanceOptions:
    settings: dict[str, Any] = {
        "base_url": url or local.url,
        "app_key": local.app_key,
        "app_token": local.app_token,
        "suites": SUITES,
        "max_examples": 10,
        **overrides,
    }
    return ConformanceOptions(**settings)


def failures(scenarios: list[Scenario]) -> str:
    lines = []
    for scenario in scenarios:
        if scenario.error:
            lines.append(f"{scenario.name}: {scenario.error}")
        for check in scenario.checks:
            if check.failed:
                lines.append(f"{scenario.name} / {check.name}:\n{check.detail}")
    return "\n\n".join(lines)


def failed_checks(scenarios: list[Scenario]) -> list[tuple[Scenario, Check]]:
    return [
        (scenario, check) for scenario in scenarios for check in scenario.checks if check.failed
    ]


# ----------------------------------------------------------------------------- without a service


def test_groups_follow_the_suites_and_the_admin_token() -> None:
    chosen = ConformanceOptions("http://x", "k", "t", ("giftcards", "payments"))
    assert [group.name for group in groups_for(chosen)] == ["payments", "giftcards"]
    with_admin = ConformanceOptions("http://x", "k", "t", ("giftcards",), admin_token="a")
    groups = groups_for(with_admin)
    assert [group.name for group in groups] == ["giftcards", "operators"]
    assert groups[1].excluded is not None and "antifraud" in groups[1].excluded
    assert "giftcards" not in groups[1].excluded
    # Without a protocol that has an admin API, none.
    only_payments = ConformanceOptions("http://x", "k", "t", ("payments",), admin_token="a")
    assert [group.name for group in groups_for(only_payments)] == ["payments"]
    with pytest.raises(ValueError, match="unknown suites"):
        groups_for(ConformanceOptions("http://x", "k", "t", ("payment",)))
    with pytest.raises(ValueError, match="unknown phases"):
        groups_for(ConformanceOptions("http://x", "k", "t", SUITES, phases=("fuzz",)))


def test_the_examples_phase_replays_the_test_suite_cases() -> None:
    """openapi.yaml's createPayment examples are VTEX's Test Suite cases (its four cards, a bank
    invoice, the redirect case's null card), sent with X-VTEX-API-Is-TestSuite: true, each with
    a callbackUrl on VTEX's domain, which every deployment allows."""
    document = yaml.safe_load(DEFAULT_OPENAPI.read_text(encoding="utf-8"))
    operation = document["paths"]["/payments"]["post"]
    (parameter,) = operation["parameters"]
    header = document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[-1]]
    assert (header["name"], header["in"], header["example"]) == (
        "X-VTEX-API-Is-TestSuite",
        "header",
        "true",
    )
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    cases: set[tuple[str, str | None]] = set()
    for example in examples.values():
        body = example["value"]
        if urlsplit(body["callbackUrl"]).hostname.endswith(".vtexpayments.com.br"):
            cases.add((body["paymentMethod"], (body.get("card") or {}).get("number")))
    assert {
        ("Visa", "4444333322221111"),
        ("Visa", "4444333322221112"),
        ("Visa", "4222222222222224"),
        ("Visa", "4222222222222225"),
        ("BankInvoice", None),
        ("Visa", None),  # the redirect case
    } <= cases


# ----------------------------------------------------------------------------- the service


@pytest.mark.slow
def test_the_service_conforms(local: LocalService) -> None:
    """Every phase on the three protocols: nothing fails, every operation was tested, the
    documented flows were followed, every answer was compared with VTEX's specification."""
    scenarios = run_conformance(options(local))
    assert not failed_checks(scenarios) and not any(s.error for s in scenarios), failures(scenarios)
    names = [scenario.name for scenario in scenarios]
    expected = []
    for suite in SUITES:
        expected += [f"{suite}: fixtures", *(f"{suite}: {phase}" for phase in PHASES)]
        expected.append(f"{suite}: VTEX specification")
    assert names == expected
    assert all(scenario.suite == "conformance" for scenario in scenarios)
    by_name = {scenario.name: scenario for scenario in scenarios}

    # Every operation answered in the fuzzing phase; the statuses are in the detail.
    fuzzing = by_name["payments: fuzzing"]
    operations = {check.name: check for check in fuzzing.checks}
    assert operations["POST /payments"].outcome is Outcome.PASSED
    assert "200×" in operations["POST /payments"].detail
    assert all(check.outcome is Outcome.PASSED for check in fuzzing.checks)

    # The documented flows were followed, and the report says which.
    for suite, link in (
        ("payments", "createPayment -> settlePayment"),
        ("payments", "settlePayment -> refundPayment"),
        ("payments", "createPayment -> cancelPayment"),
        ("giftcards", "createGiftCardTransaction -> settleGiftCardTransaction"),
        ("giftcards", "settleGiftCardTransaction -> cancelGiftCardTransaction"),
        ("antifraud", "antifraudSendTransaction -> antifraudUpdateTransaction"),
    ):
        checks = {check.name: check for check in by_name[f"{suite}: stateful"].checks}
        assert link in checks["OpenAPI links followed"].detail, suite

    # The Test Suite cases are documented examples, replayed by the examples phase.
    examples = {check.name: check for check in by_name["payments: examples"].checks}
    assert "200×" in examples["POST /payments"].detail

    # Compared with VTEX's specification; the known deviations are listed with their reason.
    for suite in SUITES:
        specification = by_name[f"{suite}: VTEX specification"]
        compared = [c for c in specification.checks if c.name.startswith("VTEX's ")]
        assert compared, suite
        assert all(" answers compared" in check.detail for check in compared)
    known = [c for c in by_name["payments: VTEX specification"].checks if "known" in c.name]
    assert any("settleId" in check.name and "refused" in check.detail for check in known)


@pytest.mark.slow
def test_the_admin_api_is_tested_with_the_admin_token(local: LocalService) -> None:
    """The admin API of the chosen protocols, with its bearer token (the examples only: the
    fuzzing of the admin API is `homologation run --admin-token`'s)."""
    chosen = options(local, suites=("giftcards",), phases=("examples", "stateful"),
                     admin_token=local.admin_token)  # fmt: skip
    (operators,) = [group for group in groups_for(chosen) if group.name == "operators"]
    scenarios = run_group(operators, chosen, VtexSpecs.load())
    assert [scenario.name for scenario in scenarios] == [
        "operators: examples",
        "operators: stateful",
    ]
    assert not failed_checks(scenarios), failures(scenarios)
    examples, stateful = scenarios
    tested = {check.name for check in examples.checks if check.outcome is Outcome.PASSED}
    assert "POST /admin/giftcards" in tested
    assert all("/admin/giftcards" in check.name for check in examples.checks), examples.checks
    assert stateful.outcome is Outcome.SKIPPED  # the admin API has no links


# ----------------------------------------------------------------------------- broken builds


def settles_everything() -> Rewrite:
    """A connector that settles 2000.00, whatever was asked and authorized."""

    def rewrite(method: str, path: str, sent: Any, status: int, answer: Any) -> tuple[int, Any]:
        if path.endswith("/settlements") and status == 200 and isinstance(answer, dict):
            return status, {**answer, "settleId": "STL-BROKEN", "value": 2000.0, "code": None}
        return status, answer

    return rewrite


def refunds_crash() -> Rewrite:
    """A connector whose refunds fail with a 500."""

    def rewrite(method: str, path: str, sent: Any, status: int, answer: Any) -> tuple[int, Any]:
        if path.endswith("/refunds"):
            return 500, {"status": "error", "code": "boom", "message": "NullPointerException"}
        return status, answer

    return rewrite


@pytest.mark.slow
@pytest.mark.parametrize(
    ("rewrite", "phases", "check", "title"),
    [
        pytest.param(
            new_tid_on_replay,
            ("examples",),
            "idempotent_create_payment",
            "A repeated POST /payments changed the payment's ids",
            id="a replay gets a new tid",
        ),
        pytest.param(
            settles_everything,
            ("fuzzing",),
            "settle_within_authorization",
            "Settled more than authorized",
            id="settles above the authorization",
        ),
        pytest.param(
            refunds_crash,
            ("examples",),
            "not_a_server_error",
            "Server error",
            id="refunds answer 500",
        ),
    ],
)
def test_a_broken_service_fails_with_the_evidence(
    local: LocalService,
    rewrite: Callable[[], Rewrite],
    phases: tuple[str, ...],
    check: str,
    title: str,
) -> None:
    """The failed check names the problem, says how to reproduce it and carries the exchanges
    (request and answer) that prove it."""
    for url in broken(local.url, rewrite()):
        scenarios = run_conformance(
            options(local, url, suites=("payments",), phases=phases, max_examples=5)
        )
        found = [
            (scenario, failed)
            for scenario, failed in failed_checks(scenarios)
            if f"[{check}] {title}" in failed.detail
        ]
        assert found, failures(scenarios)
        scenario, failed = found[0]
        assert scenario.outcome is Outcome.FAILED
        assert scenario.name.startswith("payments: ")
        assert "Reproduce with:" in failed.detail and "curl -X POST" in failed.detail
        assert failed.exchanges, failed.detail
        assert all(exchange.url.startswith(url) for exchange in failed.exchanges)
        assert all(exchange.status is not None for exchange in failed.exchanges)
        # Credentials never reach a report.
        for exchange in failed.exchanges:
            assert local.app_token not in json.dumps(exchange.request_headers)
        if check == "idempotent_create_payment":
            # The evidence: the answer, and the same request sent again with another tid.
            tids: dict[str, set[str]] = {}
            for exchange in failed.exchanges:
                answer = json.loads(exchange.response_body or "{}")
                tids.setdefault(answer["paymentId"], set()).add(answer["tid"])
            assert any(len(found) == 2 for found in tids.values()), failed.exchanges
        if check == "settle_within_authorization":
            assert "2000" in failed.detail
