"""The rule file and the engine, without HTTP or a database: each rule kind fires and does not
fire, thresholds map the total, the file validates, and the shipped default set parses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connector.antifraud.facts import Facts
from connector.antifraud.rules import History, InvalidRules, RuleSet, Tally, parse_rules
from connector.antifraud.rulesets import default_rules
from protocol.antifraud import AnalysisRequest
from tests.antifraud.conftest import ADDRESS, order


def facts_of(**changes: Any) -> Facts:
    return Facts.of(AnalysisRequest.model_validate(order(**changes)), "BRL")


def one_rule(rule: dict[str, Any], review: int = 50, deny: int = 80) -> RuleSet:
    return RuleSet.model_validate(
        {"thresholds": {"review": review, "deny": deny}, "rules": [{"name": "r", **rule}]}
    )


def fires(rule: dict[str, Any], facts: Facts, history: History | None = None) -> bool:
    verdict = one_rule(rule).evaluate(facts, history or History())
    return "r" in verdict.fired


# ----------------------------------------------------------------------------- facts


def test_facts_read_vtex_test_suite_order() -> None:
    facts = facts_of()
    assert facts.amount == Decimal("150.60") and facts.amount_minor == 15060
    assert facts.currency == "BRL"
    assert facts.card == "4869028214" and facts.bin == "486902"
    assert facts.email == "john.doe@example.com" and facts.email_domain == "example.com"
    assert facts.document == "01234567890"
    assert facts.ip_country is None  # 192.168.0.1 is private
    assert facts.shipping_country == "BR" and facts.billing_country == "BR"
    assert facts.shipping_key == ("BR", "22250040")


def test_facts_survive_a_sparse_order() -> None:
    """VTEX's own examples omit most fields; nothing here may be required but the id."""
    facts = Facts.of(AnalysisRequest.model_validate({"id": "X1"}), "BRL")
    assert facts.amount == 0 and facts.card is None and facts.email is None
    assert facts.shipping_key is None and facts.bin_country is None


def test_facts_take_the_payments_sum_and_currency_when_value_is_missing() -> None:
    facts = facts_of(
        value=...,
        **{"payments.0.value": 10.005, "payments.0.currencyIso4217": "usd"},
    )
    assert facts.currency == "USD"
    assert facts.amount_minor == 1001  # rounded half up to the cent


# ----------------------------------------------------------------------------- each rule kind


def test_velocity_fires_above_max_count_only() -> None:
    rule = {"kind": "velocity", "subject": "card", "window": "1h", "max_count": 3, "score": 40}
    facts = facts_of()
    assert not fires(rule, facts, History({("card", 3600): Tally(3, 100)}))
    assert fires(rule, facts, History({("card", 3600): Tally(4, 100)}))
    # A window other than the rule's is not its tally.
    assert not fires(rule, facts, History({("card", 600): Tally(40, 100)}))


def test_velocity_fires_above_max_amount() -> None:
    rule = {"kind": "velocity", "subject": "email", "window": "24h", "max_amount": "1000.00"}
    facts = facts_of()
    assert not fires(rule, facts, History({("email", 86_400): Tally(2, 100_000)}))
    assert fires(rule, facts, History({("email", 86_400): Tally(2, 100_001)}))


def test_velocity_without_the_subject_does_not_fire() -> None:
    rule = {"kind": "velocity", "subject": "device", "window": 60, "max_count": 0}
    assert not fires(rule, facts_of(deviceFingerprint=...), History())


def test_amount_rule() -> None:
    assert fires({"kind": "amount", "above": "150.59"}, facts_of())
    assert not fires({"kind": "amount", "above": "150.60"}, facts_of())
    assert not fires({"kind": "amount", "above": "100", "up_to": "150"}, facts_of())


def test_country_mismatch_by_bin_and_by_ip() -> None:
    us_card = {"payments.0.details.bin": "414720"}  # a US BIN in the shipped table
    assert facts_of(**us_card).bin_country == "US"
    assert fires({"kind": "country_mismatch", "source": "bin"}, facts_of(**us_card))
    brazilian = facts_of(**{"payments.0.details.bin": "516292"})
    assert brazilian.bin_country == "BR"
    assert not fires({"kind": "country_mismatch", "source": "bin"}, brazilian)
    # IP: Google's resolver is registered in the US; NIC.br's block in Brazil.
    rule = {"kind": "country_mismatch", "source": "ip", "against": "billing"}
    assert fires(rule, facts_of(ip="8.8.8.8"))
    assert not fires(rule, facts_of(ip="200.160.0.1"))
    # Unknown countries never fire (a private IP).
    assert not fires(rule, facts_of(ip="10.1.2.3"))


def test_blocklist_by_each_field() -> None:
    cases = {
        "email": "JOHN.DOE@example.com ",
        "email_domain": "Example.com",
        "document": "012.345.678-90",
        "bin": "486902",
        "card": "486902-8214",
        "device": "12ADE389087FEXD",
    }
    for field, listed in cases.items():
        rule = {"kind": "blocklist", "field": field, "values": [listed]}
        assert fires(rule, facts_of()), field
        assert not fires({**rule, "values": ["someone-else"]}, facts_of()), field
    ip_rule = {"kind": "blocklist", "field": "ip", "values": ["192.168.0.1"]}
    assert fires(ip_rule, facts_of())
    verdict = one_rule({"kind": "blocklist", "field": "bin", "values": ["486902"]}).evaluate(
        facts_of(), History()
    )
    assert verdict.decision == "denied" and verdict.score == 100  # default score 100


def test_allowlist_approves_outright() -> None:
    rules = RuleSet.model_validate(
        {
            "rules": [
                {"name": "block", "kind": "blocklist", "field": "bin", "values": ["486902"]},
                {
                    "name": "vip",
                    "kind": "allowlist",
                    "field": "email",
                    "values": ["john.doe@example.com"],
                },  # fmt: skip
            ]
        }
    )
    verdict = rules.evaluate(facts_of(), History())
    assert verdict.decision == "approved" and verdict.allowlisted
    assert list(verdict.fired) == ["vip"]
    other = rules.evaluate(facts_of(**{"miniCart.buyer.email": "x@y.com"}), History())
    assert other.decision == "denied" and list(other.fired) == ["block"]


def test_first_purchase_rule() -> None:
    rule = {"kind": "first_purchase", "identity": "email", "above": "100"}
    assert fires(rule, facts_of(), History())
    assert not fires(rule, facts_of(), History(returning=frozenset({"email"})))
    assert not fires(rule, facts_of(value=99), History())
    assert not fires(rule, facts_of(**{"miniCart.buyer.email": None}), History())
    by_document = {**rule, "identity": "document"}
    assert not fires(by_document, facts_of(), History(returning=frozenset({"document"})))


def test_address_mismatch_rule() -> None:
    rule = {"kind": "address_mismatch"}
    assert not fires(rule, facts_of())  # the suite's billing address is the shipping one
    moved = {"payments.0.details.address": {**ADDRESS, "postalCode": "01310-100"}}
    assert fires(rule, facts_of(**moved))
    assert not fires(rule, facts_of(**{"payments.0.details.address": None}))


def test_disabled_rule_never_fires() -> None:
    assert not fires({"kind": "amount", "above": "1", "enabled": False}, facts_of())


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("scores", "decision", "total"),
    [
        ([10, 20], "approved", 30),
        ([25, 24], "approved", 49),
        ([25, 25], "review", 50),
        ([40, 39], "review", 79),
        ([40, 40], "denied", 80),
        ([90, 90], "denied", 100),  # clamped
        ([30, -50], "approved", 0),  # clamped
    ],
)
def test_thresholds_map_the_total(scores: list[int], decision: str, total: int) -> None:
    rules = RuleSet.model_validate(
        {
            "thresholds": {"review": 50, "deny": 80},
            "rules": [
                {"name": f"r{i}", "kind": "amount", "above": "0", "score": score}
                for i, score in enumerate(scores)
            ],
        }
    )
    verdict = rules.evaluate(facts_of(), History())
    assert (verdict.decision, verdict.score) == (decision, total)
    assert set(verdict.fired) == {f"r{i}" for i in range(len(scores))}
    assert all(reason.endswith(f"({score:+d})") for reason, score in
               zip(verdict.fired.values(), scores, strict=True))  # fmt: skip


# ----------------------------------------------------------------------------- the file


def test_yaml_and_toml_files_mean_the_same() -> None:
    yaml_text = """
thresholds: {review: 40, deny: 70}
review: {deadline: 2h, on_deadline: approved}
rules:
  - {name: big, kind: amount, above: 1000, score: 30}
"""
    toml_text = """
[thresholds]
review = 40
deny = 70

[review]
deadline = "2h"
on_deadline = "approved"

[[rules]]
name = "big"
kind = "amount"
above = 1000
score = 30
"""
    from_yaml, from_toml = parse_rules(yaml_text), parse_rules(toml_text)
    assert from_yaml == from_toml
    assert from_yaml.review.deadline == 7200 and from_yaml.review.on_deadline == "approved"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("rules: [{name: a, kind: teleport}]", "rules.0"),
        ("rules: [{name: a, kind: amount}]", "above"),
        ("rules: [{name: a, kind: amount, above: 1, scor: 5}]", "scor"),
        ("rules: [{name: a, kind: velocity, subject: card, window: 1h}]", "max_count"),
        ("rules: [{name: a, kind: velocity, subject: card, window: 1w, max_count: 1}]", "window"),
        ("rules: [{name: a, kind: amount, above: 1, score: 500}]", "score"),
        ("thresholds: {review: 90, deny: 10}", "review threshold"),
        ("review: {deadline: 6d}", "5 days"),
        (
            "rules: [{name: a, kind: amount, above: 1}, {name: a, kind: amount, above: 2}]",
            "unique",
        ),  # fmt: skip
        ("rules: [{name: 'Not A Name', kind: amount, above: 1}]", "name"),
        ("- just\n- a list", "mapping"),
        ("rules: [unclosed", "does not parse"),
        ("[thresholds\nreview = 1", "does not parse"),
    ],
)
def test_invalid_files_say_where(text: str, complaint: str) -> None:
    with pytest.raises(InvalidRules) as raised:
        parse_rules(text)
    assert complaint in str(raised.value)


def test_the_shipped_default_parses_and_covers_every_kind() -> None:
    rules = default_rules().rules
    kinds = {rule.kind for rule in rules.rules}
    assert kinds >= {"velocity", "amount", "country_mismatch", "first_purchase",
                     "address_mismatch", "blocklist"}  # fmt: skip
    assert rules.thresholds.review < rules.thresholds.deny
    assert ("card", 3600) in rules.windows() and "email" in rules.identities()
    # The test suite's order passes the default set (a US BIN shipping to Brazil: 25 < 50).
    verdict = rules.evaluate(facts_of(), History(returning=frozenset({"email"})))
    assert verdict.decision == "approved"
