"""A report three ways: the console (one line per scenario and per check, the exchanges of each
failure), JUnit XML for CI, and one self-contained HTML page for people."""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET  # only writes XML
from importlib.resources import files
from typing import TextIO

import jinja2

from homologation.report import Check, Outcome, Report, Scenario

MARKS = {Outcome.PASSED: "PASS", Outcome.FAILED: "FAIL", Outcome.SKIPPED: "SKIP"}
CHECK_MARKS = {Outcome.PASSED: "ok  ", Outcome.FAILED: "FAIL", Outcome.SKIPPED: "skip"}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def console(report: Report, out: TextIO, verbose: bool = False) -> None:
    """Scenario lines; check lines; the exchanges of failed checks (of all checks: `verbose`)."""
    for suite, scenarios in report.by_suite():
        out.write(f"\n{suite}\n")
        for scenario in scenarios:
            out.write(
                f"  {MARKS[scenario.outcome]}  {scenario.name}  ({scenario.seconds:.1f} s)"
                f"{'  - ' + scenario.stands_for if scenario.stands_for else ''}\n"
            )
            for check in scenario.checks:
                out.write(f"        {CHECK_MARKS[check.outcome]}  {check.name}\n")
                if check.detail and (check.failed or verbose):
                    out.write(_indent(check.detail, "              ") + "\n")
                if check.failed or verbose:
                    for exchange in check.exchanges:
                        out.write(_indent(exchange.as_text(), "              ") + "\n")
            if scenario.error is not None:
                out.write(f"        FAIL  ended by an error: {scenario.error}\n")
                for exchange in scenario.exchanges[-1:]:
                    out.write(_indent(exchange.as_text(), "              ") + "\n")
    counts = report.counts()
    seconds = (report.finished_at or report.started_at) - report.started_at
    verdict = "FAILED" if report.failed else "PASSED"
    out.write(
        f"\n{verdict}: {counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, "
        f"{counts[Outcome.SKIPPED]} skipped scenarios against {report.target} in {seconds:.0f} s\n"
    )


def _failure_text(scenario: Scenario) -> str:
    parts: list[str] = []
    for check in scenario.checks:
        if check.failed:
            parts.append(f"FAIL {check.name}\n{check.detail}")
            parts += [exchange.as_text() for exchange in check.exchanges]
    if scenario.error is not None:
        parts.append(f"ended by an error: {scenario.error}")
    return "\n\n".join(parts)


def _first_failure(scenario: Scenario) -> Check | None:
    return next((check for check in scenario.checks if check.failed), None)


def junit(report: Report) -> str:
    """One `testsuite` per suite, one `testcase` per scenario; its checks in `system-out`."""
    root = ET.Element("testsuites", name="homologation", tests=str(len(report.scenarios)))
    counts = report.counts()
    root.set("failures", str(counts[Outcome.FAILED]))
    root.set("skipped", str(counts[Outcome.SKIPPED]))
    stamp = datetime.datetime.fromtimestamp(report.started_at, datetime.UTC).isoformat()
    for suite, scenarios in report.by_suite():
        node = ET.SubElement(
            root,
            "testsuite",
            name=suite,
            tests=str(len(scenarios)),
            failures=str(sum(s.outcome is Outcome.FAILED for s in scenarios)),
            skipped=str(sum(s.outcome is Outcome.SKIPPED for s in scenarios)),
            errors="0",
            time=f"{sum(s.seconds for s in scenarios):.3f}",
            timestamp=stamp,
            hostname=report.target,
        )
        for scenario in scenarios:
            case = ET.SubElement(
                node,
                "testcase",
                classname=f"homologation.{suite}",
                name=scenario.name,
                time=f"{scenario.seconds:.3f}",
            )
            if scenario.outcome is Outcome.FAILED:
                first = _first_failure(scenario)
                message = first.name if first is not None else f"error: {scenario.error}"
                failure = ET.SubElement(case, "failure", message=message, type="homologation")
                failure.text = _failure_text(scenario)
            elif scenario.outcome is Outcome.SKIPPED:
                ET.SubElement(case, "skipped", message=scenario.checks[0].detail)
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(
                f"{CHECK_MARKS[check.outcome]} {check.name}" for check in scenario.checks
            )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def html(report: Report) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: files("homologation").joinpath("templates", name).read_text("utf-8")
        ),
        autoescape=True,  # bodies and headers come from the deployment under test
        undefined=jinja2.StrictUndefined,
    )
    started = datetime.datetime.fromtimestamp(report.started_at, datetime.UTC)
    seconds = (report.finished_at or report.started_at) - report.started_at
    return environment.get_template("report.html.j2").render(
        report=report,
        counts=report.counts(),
        started=started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        seconds=seconds,
        Outcome=Outcome,
    )
