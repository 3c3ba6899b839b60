"""The README's worked rule file decides what the README says it decides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from connector.antifraud.facts import Facts
from connector.antifraud.rules import History, Tally, parse_rules
from protocol.antifraud import AnalysisRequest
from tests.antifraud.conftest import order

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
US_CARD, BRAZILIAN_CARD = "486902", "516292"


def worked_example() -> str:
    section = README[README.index("### Anti-fraud rules") :]
    match = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the README lost its worked rule file"
    return match[1]


def facts(value: str, card: str, email: str = "maria@example.com") -> Facts:
    body = order(value=value, **{"payments.0.details.bin": card, "miniCart.buyer.email": email})
    return Facts.of(AnalysisRequest.model_validate(body), "BRL")


def history(orders_on_card: int, returning: bool) -> History:
    tally: dict[Any, Tally] = {("card", 3600): Tally(orders_on_card, 0)}
    return History(tally, frozenset({"email"}) if returning else frozenset())


@pytest.mark.parametrize(
    ("case", "fired", "score", "decision"),
    [
        ((facts("150.00", BRAZILIAN_CARD), history(1, True)), set(), 0, "approved"),
        ((facts("2500.00", US_CARD), history(1, False)),
         {"big-order", "foreign-card", "new-buyer"}, 70, "review"),
        ((facts("2500.00", BRAZILIAN_CARD), history(4, True)),
         {"card-burst", "big-order"}, 70, "review"),
        ((facts("2500.00", US_CARD), history(4, False)),
         {"card-burst", "big-order", "foreign-card", "new-buyer"}, 100, "denied"),
        ((facts("10.00", BRAZILIAN_CARD, "x@Mailinator.com"), history(1, True)),
         {"banned"}, 100, "denied"),
        ((facts("9000.00", US_CARD, "buyer@mystore.com"), history(9, False)),
         {"staff"}, 0, "approved"),
    ],
)  # fmt: skip
def test_the_worked_example_decides_as_documented(
    case: tuple[Facts, History], fired: set[str], score: int, decision: str
) -> None:
    rules = parse_rules(worked_example())
    verdict = rules.evaluate(*case)
    assert (set(verdict.fired), verdict.score, verdict.decision) == (fired, score, decision)
    assert rules.review.deadline == 12 * 3600 and rules.review.on_deadline == "denied"


def test_the_documented_responses_example_is_what_the_engine_writes() -> None:
    rules = parse_rules(worked_example())
    verdict = rules.evaluate(facts("100.00", BRAZILIAN_CARD), history(4, True))
    assert verdict.fired["card-burst"] in README
