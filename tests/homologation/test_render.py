"""The report's three renderings, the receiver and the command line, without a service."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import httpx
import pytest

from homologation import render
from homologation.cli import build_parser, main
from homologation.receiver import parse_listen, running_receiver
from homologation.report import Exchange, Outcome, Report, Scenario

TOKEN = "s3cr3t-app-token"


def sample_report() -> Report:
    report = Report(target="https://staging.example.com", suites=["payments", "giftcards"])
    good = Scenario("payments", "Denied", "Test Suite: Denied")
    good.passed("status is 'denied'")
    bad = Scenario("payments", "Idempotent replay", "Gateway retries")
    exchange = Exchange(
        "POST",
        "https://staging.example.com/payment-provider/payments",
        {"X-VTEX-API-AppKey": "key", "X-VTEX-API-AppToken": TOKEN},
        '{"paymentId": "P1"}',
        200,
        {"Content-Type": "application/json"},
        '{"tid": "<script>alert(1)</script>"}',
        0.042,
    )
    bad.failed("a replayed payment returns the same ids", "new values for ['tid']", exchange)
    crashed = Scenario("giftcards", "Checkout", "Hub flows")
    crashed.error = "ConnectError: refused"
    skipped = Scenario("giftcards", "Nothing", "")
    skipped.skipped("not applicable", "no admin token")
    report.scenarios = [good, bad, crashed, skipped]
    report.finished_at = report.started_at + 12
    return report


def test_credentials_never_reach_a_report() -> None:
    report = sample_report()
    out = io.StringIO()
    render.console(report, out, verbose=True)
    for text in (out.getvalue(), render.junit(report), render.html(report)):
        assert TOKEN not in text
        assert "X-VTEX-API-AppToken: ***" in text


def test_console_has_a_line_per_scenario_and_check_and_the_failing_exchange() -> None:
    out = io.StringIO()
    render.console(sample_report(), out)
    text = out.getvalue()
    assert "  PASS  Denied" in text and "        ok    status is 'denied'" in text
    assert "  FAIL  Idempotent replay" in text
    assert "        FAIL  a replayed payment returns the same ids" in text
    assert "> POST https://staging.example.com/payment-provider/payments" in text
    assert "< 200 (42 ms)" in text
    assert "ended by an error: ConnectError: refused" in text
    assert "FAILED: 1 passed, 2 failed, 1 skipped" in text


def test_junit_counts_failures_and_skips() -> None:
    root = ET.fromstring(render.junit(sample_report()))  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "2", "1")
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert set(suites) == {"payments", "giftcards"}
    replay = next(c for c in root.iter("testcase") if c.get("name") == "Idempotent replay")
    failure = replay.find("failure")
    assert failure is not None
    assert failure.get("message") == "a replayed payment returns the same ids"
    assert "> POST https://staging.example.com/payment-provider/payments" in (failure.text or "")
    crashed = next(c for c in root.iter("testcase") if c.get("name") == "Checkout")
    assert crashed.find("failure").get("message") == "error: ConnectError: refused"  # type: ignore[union-attr]
    skipped = next(c for c in root.iter("testcase") if c.get("name") == "Nothing")
    assert skipped.find("skipped") is not None


def test_html_is_self_contained_and_escapes_what_the_deployment_sent() -> None:
    page = render.html(sample_report())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Homologation FAILED" in page
    # Nothing loaded from elsewhere: no external stylesheet, script or image.
    assert "<link" not in page and "src=" not in page
    # Failed scenarios are open, passed ones folded.
    assert '<details class="scenario has-failure" open>' in page


@pytest.mark.parametrize("value", ["8000", "host:", ":80", "host:x", "host:８０"])
def test_listen_addresses_are_checked(value: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(value)


def test_the_receiver_records_what_arrives() -> None:
    with running_receiver("127.0.0.1:0") as receiver:
        token, url = receiver.new_url("an=store&X-VTEX-signature=abc")
        response = httpx.post(url, json={"status": "approved"}, headers={"X-VTEX-API-AppKey": "k"})
        (arrival,) = receiver.wait(token, timeout=5)
    assert response.status_code == 200
    assert arrival.body == {"status": "approved"}
    assert arrival.url_tail == url[url.index("/callbacks/") :]
    assert arrival.headers["x-vtex-api-appkey"] == "k"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--url", "http://x", "--app-key", "k", "--suite", "loyalty"])
    assert exited.value.code == 2
    assert "choose from payments, antifraud, giftcards or all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--url", "http://x"])
    assert "--app-key and --app-token" in capsys.readouterr().err


def test_suite_and_phase_options() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["run", "--url", "u", "--suite", "giftcards,payments", "--phases", "examples,stateful"]
    )
    assert args.suite == ("payments", "giftcards")
    assert args.phases == ("examples", "stateful")
    assert parser.parse_args(["run", "--url", "u", "--suite", "all"]).suite == (
        "payments",
        "antifraud",
        "giftcards",
    )
    assert Outcome.FAILED.value == "failed"


def test_card_data_never_reaches_a_report() -> None:
    body = (
        '{"card": {"number": "4222222222222224", "csc": "987", "bin": "422222"},'
        ' "reference": "1764343543210", "note": "paid with 4444333322221111"}'
    )
    exchange = Exchange("POST", "https://x/payments", {}, body, 200, {}, body, 0.01)
    report = sample_report()
    report.scenarios[1].checks[0].exchanges.append(exchange)
    curl = """curl -d '{"card": {"number": "4444333322221111", "csc": "123"}}' https://x"""
    report.scenarios[1].failed("reproduced", f"Reproduce with:\n{curl}")
    out = io.StringIO()
    render.console(report, out, verbose=True)
    for text in (out.getvalue(), render.junit(report), render.html(report)):
        assert "4222222222222224" not in text and "4444333322221111" not in text
        assert "422222******2224" in text and "444433******1111" in text
        assert '"987"' not in text and "&#34;987&#34;" not in text
        assert '"123"' not in text and "&#34;123&#34;" not in text
        assert "1764343543210" in text  # an order reference is not a card number
