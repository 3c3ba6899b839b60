"""From the engine's events to scenarios and checks."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.core.result import Ok
from schemathesis.engine import Status, events
from schemathesis.engine.recorder import ScenarioRecorder

from homologation.conformance.config import EXCHANGES_PER_FAILURE, PHASES, REQUIRED_LINKS, SUITE
from homologation.conformance.state import RunState, exchange_of
from homologation.report import Check, Exchange, Scenario


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
