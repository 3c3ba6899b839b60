"""One homologation run: the scenarios of the chosen suites, then Schemathesis' conformance
phases, into one `Report`."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from homologation.client import Client, Target
from homologation.receiver import running_receiver
from homologation.report import Exchange, Outcome, Report, Scenario
from homologation.scenarios import antifraud, giftcards, payments
from homologation.scenarios.base import Abort, Definition, Limits, Run
from homologation.vtex_specs import VtexSpecs

SUITES = ("payments", "antifraud", "giftcards")
DEFINITIONS: tuple[Definition, ...] = (
    *payments.SCENARIOS,
    *antifraud.SCENARIOS,
    *giftcards.SCENARIOS,
)


@dataclass(frozen=True)
class Fuzzing:
    """Schemathesis' part of the run (`homologation.conformance`)."""

    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
    max_examples: int = 25
    seed: int | None = None
    admin_token: str | None = None


@dataclass(frozen=True)
class RunOptions:
    target: Target
    suites: tuple[str, ...] = SUITES
    callback_listen: str = "127.0.0.1:0"
    callback_public_url: str | None = None
    callback_app_key: str | None = None
    limits: Limits = field(default_factory=Limits)
    fuzzing: Fuzzing | None = field(default_factory=Fuzzing)  # None: scenarios only
    select: str | None = None  # only scenarios whose name contains this (case-insensitive)
    parallel: int = 4  # scenarios run at once


def selected(options: RunOptions) -> list[Definition]:
    wanted = (options.select or "").lower()
    return [
        definition
        for definition in DEFINITIONS
        if definition.suite in options.suites and wanted in definition.name.lower()
    ]


def run(options: RunOptions, specs: VtexSpecs | None = None) -> Report:
    specs = specs or VtexSpecs.load()
    report = Report(target=options.target.base_url, suites=list(options.suites))
    report.settings = {
        "suites": ", ".join(options.suites),
        "max response time": f"{options.limits.max_response_time:g} s",
        "callback wait": f"{options.limits.callback_timeout:g} s",
        "hook wait": f"{options.limits.hook_timeout:g} s",
        "schemathesis": "off" if options.fuzzing is None else ", ".join(options.fuzzing.phases),
        "scenarios at once": str(options.parallel),
    }
    with running_receiver(options.callback_listen, options.callback_public_url) as receiver:
        report.settings["callback receiver"] = receiver.public_url

        def play_one(definition: Definition) -> Scenario:
            # A client per scenario: its calls, and only its, are recorded in its scenario.
            client = Client(options.target)
            try:
                context = Run(
                    Scenario(definition.suite, definition.name, definition.stands_for),
                    client,
                    receiver,
                    options.limits,
                    options.callback_app_key,
                )
                return play(definition, context, specs)
            finally:
                client.close()

        # Scenarios are independent (each uses its own payments, analyses and cards), and most
        # of a run is waiting for callbacks: several at once, reported in their order.
        with ThreadPoolExecutor(max_workers=options.parallel) as pool:
            report.scenarios.extend(pool.map(play_one, selected(options)))
    if options.fuzzing is not None and options.select is None:
        report.scenarios.extend(conformance(options, specs))
    report.finished_at = time.time()
    return report


def play(definition: Definition, context: Run, specs: VtexSpecs) -> Scenario:
    scenario = context.scenario
    observed: list[tuple[str, str, Exchange]] = []

    def observe(protocol: str, path: str, exchange: Exchange) -> None:
        scenario.exchanges.append(exchange)
        observed.append((protocol, path, exchange))

    context.client.observers.append(observe)
    started = time.monotonic()
    try:
        definition.function(context)
    except Abort:
        pass  # the failed check that ended it is already recorded
    except Exception as error:  # any surprise is reported, the run goes on
        scenario.error = f"{type(error).__name__}: {error}"
    finally:
        context.client.observers.remove(observe)
        scenario.seconds = time.monotonic() - started
    check_response_times(scenario, context.limits.max_response_time)
    check_vtex_specs(scenario, observed, specs)
    return scenario


def check_response_times(scenario: Scenario, limit: float) -> None:
    slow = [
        exchange
        for exchange in scenario.exchanges
        if exchange.elapsed_seconds is not None and exchange.elapsed_seconds > limit
    ]
    if scenario.exchanges:
        scenario.expect(
            not slow,
            f"every answer within {limit:g} s",
            f"{len(slow)} slower than {limit:g} s",
            *slow,
        )


def check_vtex_specs(
    scenario: Scenario, observed: Sequence[tuple[str, str, Exchange]], specs: VtexSpecs
) -> None:
    """Each answer against VTEX's own specification, where it has the operation; each
    difference is reported once per operation, status and place."""
    unexpected: dict[str, None] = {}
    known: dict[str, None] = {}
    evidence: list[Exchange] = []
    compared = 0
    for protocol, path, exchange in observed:
        if exchange.status is None:
            continue
        body = _json(exchange.response_body)
        differences = specs.differences(protocol, exchange.method, path, exchange.status, body)
        compared += 1
        for difference in differences:
            line = (
                f"{difference.method} {difference.path_template} {difference.status}: "
                f"{difference.message}"
            )
            if difference.known is None:
                unexpected[line] = None
                if exchange not in evidence:
                    evidence.append(exchange)
            else:
                known[f"{line} (deliberate: {difference.known})"] = None
    if not compared:
        return
    if unexpected:
        scenario.failed(
            "answers agree with VTEX's specification", "\n".join([*unexpected, *known]), *evidence
        )
    else:
        scenario.passed(
            "answers agree with VTEX's specification",
            "\n".join(known) if known else f"{compared} answers compared",
        )


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def conformance(options: RunOptions, specs: VtexSpecs) -> list[Scenario]:
    from homologation.conformance import ConformanceOptions, run_conformance

    assert options.fuzzing is not None
    fuzzing = options.fuzzing
    started = time.monotonic()
    try:
        return run_conformance(
            ConformanceOptions(
                base_url=options.target.base_url,
                app_key=options.target.app_key,
                app_token=options.target.app_token,
                suites=options.suites,
                phases=fuzzing.phases,
                max_examples=fuzzing.max_examples,
                max_response_time=options.limits.max_response_time,
                seed=fuzzing.seed,
                admin_token=fuzzing.admin_token,
            ),
            specs,
        )
    except Exception as error:  # a broken fuzzing run is a failed scenario
        scenario = Scenario("conformance", "Schemathesis", "openapi.yaml")
        scenario.error = f"{type(error).__name__}: {error}"
        scenario.seconds = time.monotonic() - started
        return [scenario]


def exit_code(report: Report) -> int:
    return 1 if report.failed or not report.scenarios else 0


def counts_line(report: Report) -> str:
    counts = report.counts()
    return ", ".join(f"{counts[outcome]} {outcome.value}" for outcome in Outcome)
