"""The comparison of every answer with VTEX's specification."""

from __future__ import annotations

from collections import Counter, defaultdict

from homologation.conformance.config import SUITE
from homologation.conformance.state import RunState
from homologation.report import Check, Exchange, Outcome, Scenario


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
