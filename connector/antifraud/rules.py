"""The rule file: what a merchant's anti-fraud rules say, validated by pydantic, and how they
decide.

A rule set is a list of rules, each adding its `score` (negative lowers the risk) when it fires;
the total, clamped to 0-100, is compared with two thresholds: below `review` approves, from
`review` approves only after an operator's review, from `deny` denies. An allowlist match approves
outright, before any score is counted (Stripe Radar's order: allow before block and review).

Evaluation is pure: the service gathers the facts of the order (`connector.antifraud.facts`) and
the history the rules ask for (velocity tallies, earlier purchases), counted in the database.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from connector.antifraud.facts import Facts

Subject = Literal["card", "email", "document", "ip", "device"]
ListField = Literal["email", "email_domain", "document", "ip", "bin", "card", "device"]
Decision = Literal["approved", "review", "denied"]

_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


def _seconds(value: Any) -> Any:
    """`90`, `"90s"`, `"15m"`, `"24h"` or `"7d"` as seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("a duration is a number of seconds or looks like 90s, 15m, 24h, 7d")
        return int(match[1]) * _UNIT_SECONDS[match[2]]
    return value


Duration = Annotated[int, BeforeValidator(_seconds), Field(gt=0, le=366 * 86_400)]
Money = Annotated[Decimal, Field(ge=0, le=Decimal(10) ** 12, allow_inf_nan=False)]
RuleName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Strict):
    name: RuleName
    description: str | None = Field(default=None, max_length=500)
    score: int = Field(default=0, ge=-100, le=100)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class Tally:
    """Analyses in a window, this one included."""

    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class History:
    """What the database knows about the order's subjects, as the rules asked for it."""

    # (subject kind, window seconds) -> the tally of that window.
    tallies: dict[tuple[str, int], Tally] = field(default_factory=dict)
    # Identities (email, document) with an earlier analysis at this merchant.
    returning: frozenset[str] = frozenset()


class VelocityRule(_Rule):
    """Fires when, within `window`, the analyses with this order's card (BIN + last four), email,
    document, IP or device fingerprint, this one included, exceed `max_count` or add up to more
    than `max_amount`."""

    kind: Literal["velocity"]
    subject: Subject
    window: Duration
    max_count: int | None = Field(default=None, ge=0)
    max_amount: Money | None = None

    @model_validator(mode="after")
    def _has_a_limit(self) -> VelocityRule:
        if self.max_count is None and self.max_amount is None:
            raise ValueError("a velocity rule needs max_count, max_amount or both")
        return self

    def check(self, facts: Facts, history: History) -> str | None:
        tally = history.tallies.get((self.subject, self.window))
        if tally is None:  # the order has no such subject (no email, no card...)
            return None
        span = _describe_seconds(self.window)
        if self.max_count is not None and tally.count > self.max_count:
            return (
                f"{tally.count} orders from this {self.subject} in {span} (limit {self.max_count})"
            )
        if self.max_amount is not None and facts.units(tally.amount_minor) > self.max_amount:
            total = facts.units(tally.amount_minor)
            return f"{total} from this {self.subject} in {span} (limit {self.max_amount})"
        return None


class AmountRule(_Rule):
    """Fires when the order's value is above `above` (and, if given, at most `up_to`)."""

    kind: Literal["amount"]
    above: Money
    up_to: Money | None = None

    def check(self, facts: Facts, history: History) -> str | None:
        if facts.amount > self.above and (self.up_to is None or facts.amount <= self.up_to):
            return f"order value {facts.amount} is above {self.above}"
        return None


class CountryMismatchRule(_Rule):
    """Fires when the card's issuing country (`source: bin`) or the buyer's IP country
    (`source: ip`) differs from the shipping, billing or buyer address country. Unknown countries
    never fire (shipped offline tables; see `connector.antifraud.geo`)."""

    kind: Literal["country_mismatch"]
    source: Literal["bin", "ip"]
    against: Literal["shipping", "billing", "buyer"] = "shipping"

    def check(self, facts: Facts, history: History) -> str | None:
        theirs = facts.bin_country if self.source == "bin" else facts.ip_country
        ours = {
            "shipping": facts.shipping_country,
            "billing": facts.billing_country,
            "buyer": facts.buyer_country,
        }[self.against]
        if theirs and ours and theirs != ours:
            what = "card issued" if self.source == "bin" else "IP registered"
            return f"{what} in {theirs}, {self.against} address in {ours}"
        return None


class _ListRule(_Rule):
    field: ListField
    values: list[Annotated[str, Field(min_length=1, max_length=320)]] = Field(max_length=100_000)
    _wanted: frozenset[str] = PrivateAttr(default=frozenset())

    def model_post_init(self, context: Any) -> None:
        self._wanted = frozenset(normalise(self.field, item) for item in self.values)

    def _hit(self, facts: Facts) -> str | None:
        value = facts.list_value(self.field)
        return value if value is not None and value in self._wanted else None


class BlocklistRule(_ListRule):
    """Fires when the order's email, email domain, document, IP, BIN, card (`BIN-last4`) or device
    fingerprint is on the list. Its score defaults to 100: a listed value denies."""

    kind: Literal["blocklist"]
    score: int = Field(default=100, ge=-100, le=100)

    def check(self, facts: Facts, history: History) -> str | None:
        return f"{self.field} is blocklisted" if self._hit(facts) is not None else None


class AllowlistRule(_ListRule):
    """Approves outright when the order's value of `field` is on the list (scores are ignored)."""

    kind: Literal["allowlist"]

    def check(self, facts: Facts, history: History) -> str | None:
        return f"{self.field} is allowlisted" if self._hit(facts) is not None else None


class FirstPurchaseRule(_Rule):
    """Fires on a buyer's first analysis at this merchant (by email or document) when the order's
    value is above `above`."""

    kind: Literal["first_purchase"]
    above: Money = Decimal(0)
    identity: Literal["email", "document"] = "email"

    def check(self, facts: Facts, history: History) -> str | None:
        if facts.subject(self.identity) is None or self.identity in history.returning:
            return None
        if facts.amount > self.above:
            return f"first purchase of this {self.identity}, value {facts.amount} > {self.above}"
        return None


class AddressMismatchRule(_Rule):
    """Fires when the billing address (the card payment's) and the shipping address differ in
    country or postal code. Missing addresses never fire."""

    kind: Literal["address_mismatch"]

    def check(self, facts: Facts, history: History) -> str | None:
        billing, shipping = facts.billing_key, facts.shipping_key
        if billing and shipping and billing != shipping:
            return "billing and shipping addresses differ"
        return None


Rule = Annotated[
    VelocityRule
    | AmountRule
    | CountryMismatchRule
    | BlocklistRule
    | AllowlistRule
    | FirstPurchaseRule
    | AddressMismatchRule,
    Field(discriminator="kind"),
]


class Thresholds(_Strict):
    review: int = Field(default=50, ge=0, le=101)
    deny: int = Field(default=80, ge=0, le=101)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.review > self.deny:
            raise ValueError("the review threshold must not exceed the deny threshold")
        return self


class ReviewPolicy(_Strict):
    # How long an order waits for an operator before `on_deadline` decides it. VTEX gives up on
    # an `undefined` analysis after 5 days.
    deadline: Duration = 86_400
    on_deadline: Literal["approved", "denied"] = "denied"

    @model_validator(mode="after")
    def _before_vtex_gives_up(self) -> ReviewPolicy:
        if self.deadline > 5 * 86_400:
            raise ValueError("review.deadline must be at most 5 days (VTEX cancels after that)")
        return self


class RuleSet(_Strict):
    version: Literal[1] = 1
    thresholds: Thresholds = Thresholds()
    review: ReviewPolicy = ReviewPolicy()
    rules: list[Rule] = Field(default_factory=list, max_length=200)

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        names = [rule.name for rule in self.rules]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"rule names must be unique: {', '.join(duplicates)}")
        return self

    def active(self) -> Iterable[Rule]:
        return (rule for rule in self.rules if rule.enabled)

    def windows(self) -> set[tuple[Subject, int]]:
        """The velocity tallies the rules read."""
        return {(r.subject, r.window) for r in self.active() if isinstance(r, VelocityRule)}

    def identities(self) -> set[Subject]:
        """The identities whose earlier purchases the rules ask about."""
        return {r.identity for r in self.active() if isinstance(r, FirstPurchaseRule)}

    def evaluate(self, facts: Facts, history: History) -> Verdict:
        fired: dict[str, str] = {}
        for rule in self.active():
            if isinstance(rule, AllowlistRule) and (reason := rule.check(facts, history)):
                return Verdict("approved", 0, {rule.name: reason}, allowlisted=True)
        total = 0
        for rule in self.active():
            if isinstance(rule, AllowlistRule):
                continue
            reason = rule.check(facts, history)
            if reason is not None:
                total += rule.score
                fired[rule.name] = f"{reason} ({rule.score:+d})"
        score = max(0, min(100, total))
        if score >= self.thresholds.deny:
            decision: Decision = "denied"
        elif score >= self.thresholds.review:
            decision = "review"
        else:
            decision = "approved"
        return Verdict(decision, score, fired)


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    score: int
    fired: dict[str, str]
    allowlisted: bool = False


class InvalidRules(ValueError):
    """A rule file that does not parse or validate; the message says where and why."""


def parse_rules(text: str, syntax: Literal["yaml", "toml", "auto"] = "auto") -> RuleSet:
    """A rule set from YAML (JSON is YAML) or TOML text."""
    try:
        if syntax == "toml" or (syntax == "auto" and _looks_like_toml(text)):
            document: Any = tomllib.loads(text)
        else:
            document = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as error:
        raise InvalidRules(f"the rule file does not parse: {error}") from error
    except RecursionError as error:  # `[[[[...` thousands deep
        raise InvalidRules("the rule file is nested too deeply") from error
    if not isinstance(document, dict):
        raise InvalidRules("the rule file must be a mapping with `rules`, `thresholds`, `review`")
    try:
        return RuleSet.model_validate(document)
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(p) for p in item['loc']) or 'file'}: {item['msg']}"
            for item in error.errors(include_url=False)[:20]
        ]
        raise InvalidRules("; ".join(problems)) from error


def _looks_like_toml(text: str) -> bool:
    """TOML tables (`[thresholds]`, `[[rules]]`) or `key = value` lines; YAML has neither."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        return stripped.startswith("[") or re.match(r"^[A-Za-z0-9_.\"-]+\s*=", stripped) is not None
    return False


def normalise(list_field: ListField, value: str) -> str:
    """How list entries and the order's values are compared: trimmed, lower case; documents,
    BINs and cards without punctuation (`123.456.789-00` is `12345678900`)."""
    text = value.strip().lower()
    if list_field in ("document", "bin", "card"):
        return re.sub(r"[^0-9a-z]", "", text)
    return text


def _describe_seconds(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


__all__ = [
    "History",
    "InvalidRules",
    "RuleSet",
    "Tally",
    "Verdict",
    "parse_rules",
]
