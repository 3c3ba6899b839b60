"""The homologation scenarios pass against the service, on both databases, and fail with a
clear report against deliberately broken builds of it."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest

from homologation import render
from homologation.local import LocalService, local_service
from homologation.report import Outcome, Report, Scenario
from homologation.runner import DEFINITIONS, exit_code, run
from tests.homologation.conftest import broken, fast_limits, new_tid_on_replay, options

pytestmark = pytest.mark.slow

# Every case VTEX's testers run, by the scenario that replays it.
VTEX_CASES = {
    "payments": {
        "Approved, settled, refunded",
        "Denied",
        "Cancellation",
        "Async Approved",
        "Async Denied",
        "Redirect",
        "Boleto",
        "Idempotent replay",
    },
    "antifraud": {
        f"{name} (id ending {last})"
        for last, name in enumerate(
            ["Authorize", "Denied", "AsyncApproved", "AsyncDenied", "HookApproved", "HookDenied"], 1
        )
    },
    "giftcards": {"Checkout: search, debit, settle, refund", "Release before settlement"},
}


def failed_checks(scenario: Scenario) -> list[str]:
    return [check.name for check in scenario.checks if check.failed]


def scenario_named(report: Report, name: str) -> Scenario:
    return next(s for s in report.scenarios if s.name == name)


def test_every_vtex_case_has_a_scenario() -> None:
    names = {(d.suite, d.name) for d in DEFINITIONS}
    for suite, cases in VTEX_CASES.items():
        assert {(suite, case) for case in cases} <= names


def test_the_suite_passes_against_the_service(service: LocalService) -> None:
    report = run(options(service))

    failures = {
        s.name: [
            f"{c.name}: {c.detail} {[e.summary for e in c.exchanges]}" for c in s.checks if c.failed
        ]
        or s.error
        for s in report.scenarios
        if s.outcome is Outcome.FAILED
    }
    assert failures == {}
    assert len(report.scenarios) == len(DEFINITIONS)
    assert exit_code(report) == 0
    # The waits were real: each callback and hook arrived, and was checked, once.
    for name in ("Async Approved", "Async Denied", "Redirect", "Boleto"):
        checks = [c.name for c in scenario_named(report, name).checks]
        assert (
            "the callback arrives within 15 s" in checks and "the callback is sent once" in checks
        )
    hook = scenario_named(report, "HookApproved (id ending 5)")
    assert "the hook is signed with the expected app key" in [c.name for c in hook.checks]
    # Every answer was compared with VTEX's specification.
    assert all(
        "answers agree with VTEX's specification" in [c.name for c in s.checks]
        for s in report.scenarios
    )


@pytest.fixture(scope="module")
def tid_forgetting_build(sqlite_service: LocalService) -> Iterator[str]:
    yield from broken(sqlite_service.url, new_tid_on_replay())


def test_a_new_tid_on_replay_fails_the_suite(
    sqlite_service: LocalService, tid_forgetting_build: str
) -> None:
    report = run(options(sqlite_service, tid_forgetting_build, select="Idempotent replay"))

    (scenario,) = report.scenarios
    assert scenario.outcome is Outcome.FAILED
    check = next(c for c in scenario.checks if c.name == "a replayed payment returns the same ids")
    assert check.failed and "tid" in check.detail
    # The evidence: both exchanges, with their tids, and no credential in clear.
    assert len(check.exchanges) == 2
    first, again = (e.response_body or "" for e in check.exchanges)
    assert '"tid"' in first and '"tid"' in again
    assert check.exchanges[0].request_headers["x-vtex-api-apptoken"] == "***"
    assert exit_code(report) == 1


def test_the_command_line_reports_a_broken_build(
    sqlite_service: LocalService, tid_forgetting_build: str, tmp_path
) -> None:
    junit, html = tmp_path / "report.xml", tmp_path / "report.html"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "homologation",
            "run",
            "--url",
            tid_forgetting_build,
            "--app-key",
            sqlite_service.app_key,
            "--app-token",
            sqlite_service.app_token,
            "--suite",
            "payments",
            "-k",
            "replay",
            "--no-fuzz",
            "--junit",
            str(junit),
            "--html",
            str(html),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert completed.returncode == 1, completed.stdout + completed.stderr
    out = completed.stdout
    assert "FAIL  Idempotent replay" in out
    assert "FAIL  a replayed payment returns the same ids" in out
    assert "> POST " in out and "/payment-provider/payments" in out and "< 200" in out
    assert sqlite_service.app_token not in out
    assert "FAILED: 0 passed, 1 failed" in out
    suites = ET.parse(junit).getroot()  # noqa: S314 - our own file
    (case,) = suites.iter("testcase")
    failure = case.find("failure")
    assert (
        failure is not None and failure.get("message") == "a replayed payment returns the same ids"
    )
    page = html.read_text()
    assert "Homologation FAILED" in page and "a replayed payment returns the same ids" in page
    assert sqlite_service.app_token not in page + junit.read_text()


def test_a_callback_that_never_arrives_fails_the_suite() -> None:
    # No background workers: authorizations stay `undefined` and nothing is ever called back.
    with local_service(extra_env={"CONNECTOR_RUN_BACKGROUND_WORKERS": "false"}) as service:
        report = run(
            options(service, select="Async Approved", limits=fast_limits(), suites=("payments",))
        )
        hooks = run(
            options(service, select="HookApproved", limits=fast_limits(), suites=("antifraud",))
        )

    (scenario,) = report.scenarios
    assert failed_checks(scenario) == ["the callback arrives within 4 s"]
    assert "nothing was POSTed to http://127.0.0.1:" in scenario.checks[-3].detail or any(
        "nothing was POSTed" in c.detail for c in scenario.checks
    )
    (hook,) = hooks.scenarios
    assert failed_checks(hook) == ["the hook arrives within 4 s"]
    text = render.junit(report)
    assert 'message="the callback arrives within 4 s"' in text


def test_an_answer_unlike_vtex_specification_fails_the_suite(sqlite_service: LocalService) -> None:
    def numeric_settle_id(
        method: str, path: str, sent: object, status: int, answer: object
    ) -> tuple[int, object]:
        if path.endswith("/settlements") and isinstance(answer, dict) and answer.get("settleId"):
            return status, {**answer, "settleId": 12345}  # VTEX's spec: a string
        return status, answer

    for url in broken(sqlite_service.url, numeric_settle_id):
        report = run(options(sqlite_service, url, select="Approved, settled"))

    (scenario,) = report.scenarios
    assert failed_checks(scenario) == ["answers agree with VTEX's specification"]
    check = next(c for c in scenario.checks if c.failed)
    assert "POST /payments/{paymentId}/settlements 200: $.settleId" in check.detail
    assert [e.url.rsplit("/", 1)[-1] for e in check.exchanges] == ["settlements"]


def test_an_overspending_gift_card_fails_the_suite(sqlite_service: LocalService) -> None:
    """A build that lets a Debit through beyond the balance (here: it hides the refusal)."""

    def accept_everything(
        method: str, path: str, sent: object, status: int, answer: object
    ) -> tuple[int, object]:
        if isinstance(answer, dict) and answer.get("code") == "insufficient-balance":
            return 200, {"id": "overspent", "value": 10.01}
        return status, answer

    for url in broken(sqlite_service.url, accept_everything):
        report = run(options(sqlite_service, url, select="No overspend"))

    (scenario,) = report.scenarios
    assert "a Debit above the balance is refused" in failed_checks(scenario)
