"""Load benchmark of the Anti-fraud Provider Protocol's decision, `POST /antifraud/transactions`,
with the default rule set and a realistically large history of earlier analyses.

What it measures
    For each database (SQLite and/or PostgreSQL) the script builds a throw-away deployment: a
    temporary SQLite file or a fresh PostgreSQL database, the migrations
    (`connector.db.migrate.upgrade`) and one merchant (`MerchantService.add`), which runs the
    shipped default rules (`connector/antifraud/default_rules.yaml`). It then seeds `--prior`
    earlier analyses (100,000 by default) straight into `antifraud_analyses` with bulk Core
    INSERTs, in batches, as `AntifraudService.analyse` writes them:

      buyers     `--buyers` (30,000) of them, with 1 to 10 orders each (a few buyers order a lot):
                 an email, a CPF, a device fingerprint, one or two cards (a Brazilian BIN mostly,
                 a foreign one sometimes), one to three IPs from a shared pool in which a few
                 addresses (carrier NATs) carry thousands of orders, addresses in Brazil; 2 % of
                 them are fraudsters (disposable email, foreign card, billing elsewhere, large
                 orders in a burst of an hour)
      orders     spread over the last 30 days; 1 % of the buyers also ordered one to three times
                 in the last hour, so the 10-minute and 1-hour windows find rows. Each order is
                 decided by the real rule engine (`RuleSet.evaluate`) on its facts (`Facts.of`
                 of a test-suite-shaped body) and the history seeded before it, so status,
                 score, `responses`, code and message are the service's: mostly approved, some
                 denied, some sent to review (those of the last 20 hours still `undefined`,
                 waiting with their deadline; older ones decided by an operator or by the
                 deadline, as `decide_review` and `decide_due` leave them, without their hook)
      keys       every subject (card = BIN + last four, email, document, IP, device) as
                 `BlindIndex.digest("antifraud-<kind>:<value>")` with the server's key, and an
                 `antifraud_subjects` row per subject the default rules count, as
                 `lock_subjects` leaves it; `order_data` is one Fernet token per buyer (the
                 encrypted body of that buyer's first order) to keep seeding fast

    The seeding time is reported. On PostgreSQL the tables are then ANALYZEd, as autovacuum would
    do within a minute of such a load; on SQLite nothing is, since neither the service nor SQLite
    runs ANALYZE by itself. Unless `--no-explain`, the plans of the queries each decision runs
    (the velocity tally `SELECT count(*), coalesce(sum(amount_minor), 0) … WHERE merchant_id = ?
    AND <kind>_key = ? AND created_at >= ?` and the first-purchase `SELECT EXISTS (…)`) are
    captured from `AntifraudRepository` itself and printed with EXPLAIN (QUERY PLAN on SQLite,
    ANALYZE on PostgreSQL), with their mean time over repeated runs.

    `connector serve` then runs as a subprocess on that database (one worker, background workers
    on, as in production) and, once `/health/ready` answers, this script plays VTEX's payment
    gateway with the merchant's X-PROVIDER-API-AppKey/AppToken. After `--warmup` unmeasured
    analyses, for each `--concurrency` C (1, then 16, by default), `--requests` analyses are sent
    by a closed loop of C tasks sharing one keep-alive `httpx.AsyncClient`; each task sends its
    next request as soon as the previous one answered. Each request is a new order (fresh VTEX
    id, body like VTEX's test suite: decimal value, a card payment with bin/lastDigits, buyer,
    shipping and billing addresses, IP, device) from

      55 %  a returning buyer: one of their seeded cards, their email (in other case, with a
            space), CPF (formatted), device and one of their IPs: the 1-hour and 24-hour tallies
            and the first-purchase EXISTS find their rows
      15 %  a buyer who also ordered in the last hour: the 1-hour windows count real rows
      30 %  a new buyer (an IP from the shared pool, everything else never seen)

    Each answer must be 200 with the order's id, a `tid` and a status `approved`, `denied` or
    `received` (a review); and the first-purchase rule must fire exactly for the new buyers'
    orders above its limit (so the server's digests are the seeded ones). After the server
    stopped, SQL checks that `antifraud_analyses` holds the seeded plus every sent analysis and
    that no VTEX id (nor tid) was stored twice.

How to read the tables
    seeding      rows written (analyses and subjects) and the time spent building them (rule
                 engine included) and inserting them
    query plans  per query, the plan (it should name the `ix_antifraud_analyses_<kind>` index on
                 (merchant_id, <kind>_key, created_at), with a search on all three columns) and
                 the mean time of one execution from Python, driver included
    load         one row per database and concurrency:
      before       analyses in the database when that loop started
      conc         C, the requests in flight (1: pure latency of one decision)
      errors       answers that were not 200 or not the expected body (samples go to stderr)
      approved..   the decisions answered (`received`: sent to manual review)
      req/s        requests divided by the wall-clock time of the loop
      p50..max     per-request latency seen by the client, in milliseconds; with a closed loop,
                   latency is roughly C / throughput, so it includes queueing inside the server
                   (on SQLite, decisions are written one at a time)
    after        rows of `antifraud_analyses` against the seeded plus sent ones, VTEX ids and
                 tids stored twice (both 0), the statuses stored by the load, subjects

    The load generator runs on the same machine as the server and competes with it for CPU:
    compare runs made on the same machine with the same options. The script exits with 1 when a
    request failed, when the table does not hold what was sent, or when a set-up step failed.

Usage
    .venv/bin/python -m tests.load.bench_antifraud [--database sqlite|postgresql|both]
        [--prior 100000] [--buyers 30000] [--requests 2000] [--concurrency 1 16] [--warmup 50]
        [--batch 5000] [--no-explain]

    Latency alone: `.venv/bin/python -m tests.load.bench_antifraud --concurrency 1`.

PostgreSQL comes from CONNECTOR_BENCH_POSTGRES_URL as in bench_authorize.py (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test); the script creates `bench_<random>` there
and drops it at the end, and deletes its temporary directory, whatever happens. Everything it
sends goes to 127.0.0.1 (no review reaches its deadline during a run, so no hook is sent), and it
stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import gzip
import json
import math
import random
import re
import secrets
import shlex
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from pydantic import SecretStr
from sqlalchemy import Table, event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from connector.antifraud.facts import SUBJECTS, Facts
from connector.antifraud.geo import BINS_PATH, ip_country
from connector.antifraud.repository import UNDEFINED, AntifraudRepository
from connector.antifraud.rules import FirstPurchaseRule, History, Tally
from connector.antifraud.rulesets import default_rules
from connector.antifraud.service import AntifraudService
from connector.app import ANTIFRAUD_PREFIX
from connector.db.engine import Database
from connector.db.migrate import upgrade
from connector.db.tables import AntifraudAnalysis, AntifraudSubject, utcnow
from connector.merchants import MerchantService
from connector.security import BlindIndex, FieldCipher, generate_public_id
from protocol.antifraud import AnalysisRequest
from protocol.money import from_minor
from tests.antifraud.conftest import order
from tests.load import bench_authorize as base
from tests.load import bench_giftcards as giftcards

TRANSACTIONS_PATH = f"{ANTIFRAUD_PREFIX}/transactions"
HOOK_URL = "https://hook.example.com/antifraud/notify?accountName=bench"
CURRENCY = "BRL"
ANSWERS = ("approved", "denied", "received")
RULES = default_rules().rules
FIRST_PURCHASE = next(r for r in RULES.active() if isinstance(r, FirstPurchaseRule))
# The subjects `lock_subjects` upserts: those the rules count or ask about.
COUNTED = {kind for kind, _ in RULES.windows()} | RULES.identities()
HISTORY_DAYS = 30
MAX_ORDERS = 10  # per seeded buyer
FRAUD_SHARE = 0.02  # of the buyers: disposable email, foreign card, bursts of large orders
RECENT_SHARE = 0.01  # of the buyers: also ordered in the last hour
FOREIGN_CARD_SHARE = 0.03  # of the honest buyers' cards
OTHER_BILLING_SHARE = 0.08  # of the honest buyers' cards: billed to another address
IPS_PER_BUYER = 1.5  # the pool holds buyers / IPS_PER_BUYER addresses
IP_SKEW = 0.8  # Zipf exponent of IP popularity: a few carrier NATs carry thousands of orders
PENDING_REVIEW_HOURS = 20  # seeded reviews younger than this still wait; older ones are decided
OPERATOR_SHARE = 0.8  # of the decided reviews: by an operator (else by the deadline)
OPERATOR = "analyst@bench.example"
RETURNING_SHARE = 0.55  # of the measured orders (then RECENT_LOAD_SHARE, then new buyers)
RECENT_LOAD_SHARE = 0.15
PLAN_RUNS = 200  # executions of each explained query for its mean time
LITERAL = re.compile(r"'[^']*'::(uuid|bytea|timestamp with time zone)")
BR_IPV4_BLOCKS = (177, 179, 186, 187, 189, 191, 200, 201)  # mostly LACNIC, Brazil
FOREIGN_IPV4_BLOCKS = (3, 8, 23, 104)  # mostly ARIN, United States
FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Elisa", "Felipe", "Gabriela", "Heitor",
               "Isabela", "João", "Larissa", "Marcos", "Natália", "Otávio", "Paula", "Rafael",
               "Sofia", "Thiago", "Vitória", "Yuri")  # fmt: skip
LAST_NAMES = ("Almeida", "Barbosa", "Cardoso", "Dias", "Esteves", "Ferreira", "Gomes", "Lima",
              "Martins", "Nunes", "Oliveira", "Pereira", "Ribeiro", "Santos", "Souza")  # fmt: skip
EMAIL_DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com.br", "uol.com.br",
                 "bol.com.br", "icloud.com")  # fmt: skip
DISPOSABLE_DOMAINS = ("mailinator.com", "yopmail.com", "trashmail.com")
CITIES = (("São Paulo", "SP", "0"), ("Rio de Janeiro", "RJ", "2"), ("Belo Horizonte", "MG", "3"),
          ("Curitiba", "PR", "8"), ("Porto Alegre", "RS", "9"), ("Salvador", "BA", "4"),
          ("Recife", "PE", "5"), ("Fortaleza", "CE", "6"))  # fmt: skip


# ----------------------------------------------------------------------------- population


@dataclass(frozen=True, slots=True)
class Ip:
    address: str
    country: str | None
    digest: bytes


@dataclass(frozen=True, slots=True)
class Card:
    bin: str
    last4: str
    billing: dict[str, Any]


@dataclass(slots=True)
class Buyer:
    number: int
    first_name: str
    last_name: str
    email: str
    document: str  # a CPF, digits only
    device: str
    phone: str
    shipping: dict[str, Any]
    cards: tuple[Card, ...]
    ips: tuple[int, ...]  # indexes into the IP pool
    fraudster: bool = False
    orders: int = 1
    recent: bool = False  # ordered in the last hour too
    # Seeded buyers only: the facts and subject digests of an order with each card, and the
    # encrypted body of their first order.
    facts: list[Facts] = field(default_factory=list)
    keys: list[dict[str, bytes]] = field(default_factory=list)
    order_data: bytes = b""


def card_bins() -> tuple[list[str], list[str]]:
    """Six-digit BINs of Brazilian and of US cards, from the table `bin_country` reads."""
    brazil: list[str] = []
    foreign: list[str] = []
    with gzip.open(BINS_PATH, "rt", newline="") as source:
        for row in csv.DictReader(source):
            prefix, country = row["prefix"], row["country"]
            if len(prefix) == 6 and country == "BR":
                brazil.append(prefix)
            elif len(prefix) == 6 and country == "US":
                foreign.append(prefix)
    return brazil, foreign


def ip_pool(count: int, rng: random.Random, blind_index: BlindIndex) -> list[Ip]:
    """Distinct public IPv4 addresses, 97 % in Brazilian blocks, in popularity order."""
    addresses: dict[str, None] = {}
    while len(addresses) < count:
        first = rng.choice(FOREIGN_IPV4_BLOCKS if rng.random() < 0.03 else BR_IPV4_BLOCKS)
        octets = (first, rng.randrange(256), rng.randrange(256), rng.randrange(1, 255))
        addresses[".".join(map(str, octets))] = None
    return [Ip(a, ip_country(a), digest(blind_index, "ip", a)) for a in addresses]


def digest(blind_index: BlindIndex, kind: str, value: str) -> bytes:
    """As `AntifraudService._digests` keys a subject's normalised value."""
    return blind_index.digest(f"antifraud-{kind}:{value}")


def address(rng: random.Random) -> dict[str, Any]:
    city, state, region = rng.choice(CITIES)
    return {"country": "BRA", "street": f"Rua {rng.choice(LAST_NAMES)}",
            "number": str(rng.randint(1, 3000)), "complement": None,
            "neighborhood": "Centro", "postalCode": f"{region}{rng.randrange(10**7):07d}",
            "city": city, "state": state}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Population:
    buyers: list[Buyer]
    ips: list[Ip]
    ip_weights: list[float]  # cumulative, for rng.choices
    brazil_bins: list[str]
    foreign_bins: list[str]


def make_buyer(number: int, population: Population, rng: random.Random) -> Buyer:
    """A buyer with their identities; `fraudster`s look like card testers."""
    fraudster = rng.random() < FRAUD_SHARE
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    domain = rng.choice(DISPOSABLE_DOMAINS if fraudster else EMAIL_DOMAINS)
    shipping = address(rng)
    cards = []
    for _ in range(1 if rng.random() < 0.6 else 2):
        foreign = fraudster or rng.random() < FOREIGN_CARD_SHARE
        bins = population.foreign_bins if foreign else population.brazil_bins
        billing = shipping
        if fraudster or rng.random() < OTHER_BILLING_SHARE:
            billing = address(rng)
        cards.append(Card(rng.choice(bins), f"{rng.randrange(10**4):04d}", billing))
    ips = rng.choices(range(len(population.ips)), cum_weights=population.ip_weights,
                      k=rng.randint(1, 3))  # fmt: skip
    return Buyer(
        number=number,
        first_name=first,
        last_name=last,
        email=f"{ascii_only(first)}.{ascii_only(last)}{number}@{domain}".lower(),
        document=f"{rng.randrange(10**11):011d}",
        device=f"{rng.getrandbits(60):015x}",
        phone=f"+55119{rng.randrange(10**8):08d}",
        shipping=shipping,
        cards=tuple(cards),
        ips=tuple(dict.fromkeys(ips)),
        fraudster=fraudster,
    )


def ascii_only(name: str) -> str:
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()


def order_body(
    buyer: Buyer,
    card: Card,
    ip: str,
    amount_minor: int,
    transaction_id: str,
    rng: random.Random,
    *,
    as_typed: bool = False,
) -> dict[str, Any]:
    """VTEX's test-suite order (`tests.antifraud.conftest.order`) for this buyer, card and IP;
    `as_typed`: the email in another case with a space, the CPF formatted."""
    value = float(from_minor(amount_minor, CURRENCY))
    shipping = min(round(rng.uniform(0, 40), 2), value)
    email, document = buyer.email, buyer.document
    if as_typed:
        email = f" {email.capitalize()}"
        document = f"{document[:3]}.{document[3:6]}.{document[6:9]}-{document[9:]}"
    changes = {
        "reference": f"v{rng.randrange(10**9)}bch-01",
        "value": value,
        "ip": ip,
        "deviceFingerprint": buyer.device,
        "miniCart.buyer.id": f"buyer-{buyer.number}",
        "miniCart.buyer.firstName": buyer.first_name,
        "miniCart.buyer.lastName": buyer.last_name,
        "miniCart.buyer.document": document,
        "miniCart.buyer.email": email,
        "miniCart.buyer.phone": buyer.phone,
        "miniCart.buyer.address": buyer.shipping,
        "miniCart.shipping.value": shipping,
        "miniCart.shipping.address": buyer.shipping,
        "miniCart.items.0.price": round(value - shipping, 2),
        "miniCart.items.0.id": str(rng.randrange(10**6)),
        "miniCart.listRegistry": ...,
        "payments.0.id": uuid.uuid4().hex.upper(),
        "payments.0.value": value,
        "payments.0.installments": rng.choice((1, 1, 1, 2, 3, 6, 10)),
        "payments.0.details.bin": card.bin,
        "payments.0.details.lastDigits": card.last4,
        "payments.0.details.holder": f"{buyer.first_name} {buyer.last_name}",
        "payments.0.details.address": card.billing,
    }
    return order(transaction_id, hook=HOOK_URL, **changes)


def draw_amount(buyer: Buyer, rng: random.Random) -> int:
    """Minor units: a median of 180.00 (2,500.00 for fraudsters), long-tailed."""
    median = 2_500_00 if buyer.fraudster else 180_00
    return max(5_00, min(60_000_00, round(rng.lognormvariate(math.log(median), 1.0))))


# ----------------------------------------------------------------------------- seeding


@dataclass(repr=False)
class Seed:
    population: Population
    recent: list[Buyer]  # buyers with an order in the last hour
    statuses: Counter[str]  # of the seeded analyses, and their analysis types
    analyses: int
    subjects: int
    in_last_hour: int
    heaviest: dict[str, bytes]  # per kind, the digest with the most seeded analyses
    heaviest_rows: dict[str, int]
    build_seconds: float
    insert_seconds: float

    @property
    def seconds(self) -> float:
        return self.build_seconds + self.insert_seconds

    def __repr__(self) -> str:
        # Short: asyncio.run formats the main task's result into an exception message on the way
        # out (CPython 3.11), and a full repr of the population costs seconds.
        return f"<Seed of {self.analyses} analyses>"


def populate(
    args: argparse.Namespace, rng: random.Random, blind_index: BlindIndex, cipher: FieldCipher
) -> Population:
    """The seeded buyers, with their order counts, facts, digests and encrypted first order."""
    brazil_bins, foreign_bins = card_bins()
    buyers_count = min(args.buyers, args.prior)
    ips = ip_pool(max(1, round(buyers_count / IPS_PER_BUYER)), rng, blind_index)
    weights = list(_cumulative(1 / (rank**IP_SKEW) for rank in range(1, len(ips) + 1)))
    population = Population([], ips, weights, brazil_bins, foreign_bins)
    buyers = [make_buyer(number, population, rng) for number in range(buyers_count)]
    population.buyers.extend(buyers)
    # 1 to 10 orders each: every buyer one, the rest to buyers drawn by a long-tailed activity.
    activity = list(_cumulative(rng.paretovariate(1.2) for _ in buyers))
    remaining = args.prior - buyers_count
    while remaining:
        for index in rng.choices(range(buyers_count), cum_weights=activity, k=remaining):
            if remaining and buyers[index].orders < MAX_ORDERS:
                buyers[index].orders += 1
                remaining -= 1
    for buyer in buyers:
        buyer.recent = rng.random() < RECENT_SHARE
        for number, card in enumerate(buyer.cards):
            body = order_body(buyer, card, ips[buyer.ips[0]].address, 100_00,
                              uuid.uuid4().hex.upper(), rng)  # fmt: skip
            request = AnalysisRequest.model_validate(body)
            facts = Facts.of(request, CURRENCY)
            buyer.facts.append(facts)
            buyer.keys.append({kind: digest(blind_index, kind, value) for kind in SUBJECTS
                               if kind != "ip" and (value := facts.subject(kind))})  # fmt: skip
            if number == 0:
                buyer.order_data = cipher.encrypt_json(
                    request.model_dump(mode="json", by_alias=True, exclude_none=True)
                )
    return population


def _cumulative(values: Iterator[float] | Sequence[float]) -> Iterator[float]:
    total = 0.0
    for value in values:
        total += value
        yield total


@dataclass(frozen=True, slots=True)
class PriorOrder:
    at: datetime
    buyer: Buyer
    card: int
    ip: int
    amount_minor: int


def schedule(population: Population, now: datetime, rng: random.Random) -> list[PriorOrder]:
    """Every seeded order, oldest first: honest buyers' spread over the 30 days (their last one
    to three in the last hour for the recent buyers), fraudsters' in a burst of an hour."""
    orders = []
    span = HISTORY_DAYS * 86_400
    for buyer in population.buyers:
        if buyer.fraudster:
            start = rng.uniform(3_600, span)
            times = [start - rng.uniform(0, 3_600) for _ in range(buyer.orders)]
        else:
            times = sorted((rng.uniform(0, span) for _ in range(buyer.orders)), reverse=True)
        if buyer.recent:
            for index in range(min(len(times), rng.randint(1, 3))):
                times[-1 - index] = rng.uniform(60, 3_540)  # the most recent ones
        for seconds in times:
            orders.append(
                PriorOrder(
                    now - timedelta(seconds=seconds),
                    buyer,
                    rng.randrange(len(buyer.cards)),
                    rng.choice(buyer.ips),
                    draw_amount(buyer, rng),
                )
            )
    orders.sort(key=lambda prior: prior.at)
    return orders


class Ledger:
    """What the database knows, per subject, as the seeding goes forward in time: the
    (time, amount) of each analysis, for the tallies and first-purchase look-ups."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, bytes], list[tuple[datetime, int]]] = {}

    def history(self, keys: dict[str, bytes], amount_minor: int, now: datetime) -> History:
        """As `AntifraudService._history` reads it, this order included."""
        tallies = {}
        for kind, seconds in RULES.windows():
            if kind not in keys:
                continue
            since, count, amount = now - timedelta(seconds=seconds), 1, amount_minor
            for at, earlier in reversed(self.seen.get((kind, keys[kind]), ())):
                if at < since:
                    break
                count, amount = count + 1, amount + earlier
            tallies[(kind, seconds)] = Tally(count, amount)
        returning = {kind for kind in RULES.identities() if (kind, keys.get(kind)) in self.seen}
        return History(tallies, frozenset(returning))

    def add(self, keys: dict[str, bytes], amount_minor: int, at: datetime) -> None:
        for kind, key in keys.items():
            self.seen.setdefault((kind, key), []).append((at, amount_minor))


def analysis_row(
    merchant_id: uuid.UUID,
    prior: PriorOrder,
    facts: Facts,
    keys: dict[str, bytes],
    history: History,
    now: datetime,
    rng: random.Random,
) -> dict[str, Any]:
    """The row `AntifraudService.analyse` writes (`_new_analysis`, `_apply`), and for an old
    review, what `decide_review` or `decide_due` left of it."""
    buyer, at = prior.buyer, prior.at
    verdict = RULES.evaluate(facts, history)
    code, message = AntifraudService._explain(verdict, RULES)
    row: dict[str, Any] = {
        "id": uuid.uuid4(), "merchant_id": merchant_id, "transaction_id": uuid.uuid4().hex.upper(),
        "tid": generate_public_id(), "reference": f"v{rng.randrange(10**9)}bch-01",
        "status": verdict.decision, "analysis_type": "automatic", "score": verdict.score,
        "responses": verdict.fired, "code": code, "message": message,
        "amount_minor": prior.amount_minor, "currency": CURRENCY, "hook_url": HOOK_URL,
        "is_test_suite": False, "pending_reads": 0, "deadline": None, "default_decision": None,
        "decided_by": "rules", "decision_reason": None, "decided_at": at, "stopped_at": None,
        "ruleset_version": None, "order_data": buyer.order_data, "created_at": at,
        "updated_at": at, **{f"{kind}_key": keys.get(kind) for kind in SUBJECTS},
    }  # fmt: skip
    if verdict.decision != "review":
        return row
    deadline = at + timedelta(seconds=RULES.review.deadline)
    row.update(status=UNDEFINED, analysis_type="manual", deadline=deadline,
               default_decision=RULES.review.on_deadline, decided_by=None,
               decided_at=None)  # fmt: skip
    if at > now - timedelta(hours=PENDING_REVIEW_HOURS):
        return row  # still waiting; with the default 24 h, its deadline is 4 h away or more
    if deadline > now or rng.random() < OPERATOR_SHARE:
        age = min((now - at).total_seconds(), RULES.review.deadline)
        decided = at + timedelta(seconds=rng.uniform(600, age))
        status = rng.choice(("approved", "denied"))
        row.update(status=status, decided_by=OPERATOR, decision_reason="called the buyer",
                   code="manual-review", message=f"{status} by {OPERATOR}")  # fmt: skip
    else:
        decided, status = deadline, RULES.review.on_deadline
        row.update(status=status, decided_by="review-deadline", code="review-deadline",
                   message=f"nobody reviewed it in time: {status} by default")  # fmt: skip
    row.update(deadline=None, decided_at=decided, updated_at=decided)
    return row


async def insert_rows(
    database: Database, table: Table, rows: list[dict[str, Any]], batch: int
) -> None:
    for first in range(0, len(rows), batch):
        async with database.write_engine.begin() as connection:
            await _tune_for_seeding(database, connection)
            await connection.execute(insert(table), rows[first : first + batch])


async def _tune_for_seeding(database: Database, connection: AsyncConnection) -> None:
    if database.is_sqlite:
        # SQLite's default page cache is 2 MB; five indexes on random 32-byte digests outgrow it.
        cache = giftcards.SQLITE_SEED_CACHE_KIB
        await connection.exec_driver_sql(f"PRAGMA cache_size=-{cache}")


async def seed(
    database: Database,
    merchant_id: uuid.UUID,
    args: argparse.Namespace,
    cipher: FieldCipher,
    blind_index: BlindIndex,
) -> Seed:
    """`args.prior` analyses in batches of `args.batch`, one database transaction per batch."""
    rng = random.Random()  # ids come from `secrets`/uuid4; the rest needs no secrecy
    now = utcnow()
    started = time.perf_counter()
    population = populate(args, rng, blind_index, cipher)
    orders = schedule(population, now, rng)
    build_seconds = time.perf_counter() - started
    insert_seconds = 0.0
    ledger = Ledger()
    statuses: Counter[str] = Counter()
    analyses = cast(Table, AntifraudAnalysis.__table__)
    for first in range(0, len(orders), args.batch):
        started = time.perf_counter()
        rows = []
        for prior in orders[first : first + args.batch]:
            ip = population.ips[prior.ip]
            facts = dataclasses.replace(
                prior.buyer.facts[prior.card],
                amount=from_minor(prior.amount_minor, CURRENCY),
                amount_minor=prior.amount_minor,
                ip=ip.address,
                ip_country=ip.country,
            )
            keys = dict(prior.buyer.keys[prior.card], ip=ip.digest)
            history = ledger.history(keys, prior.amount_minor, prior.at)
            rows.append(analysis_row(merchant_id, prior, facts, keys, history, now, rng))
            ledger.add(keys, prior.amount_minor, prior.at)
            statuses[rows[-1]["status"]] += 1
            statuses[rows[-1]["analysis_type"]] += 1
        inserting = time.perf_counter()
        build_seconds += inserting - started
        await insert_rows(database, analyses, rows, args.batch)
        insert_seconds += time.perf_counter() - inserting
    started = time.perf_counter()
    subjects = [
        {"merchant_id": merchant_id, "kind": kind, "digest": key, "last_seen_at": seen[-1][0]}
        for (kind, key), seen in ledger.seen.items()
        if kind in COUNTED
    ]
    inserting = time.perf_counter()
    build_seconds += inserting - started
    await insert_rows(database, cast(Table, AntifraudSubject.__table__), subjects, args.batch)
    insert_seconds += time.perf_counter() - inserting
    if not database.is_sqlite:
        # What autovacuum does within a minute of a bulk load; not timed as seeding.
        async with database.write_engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    heaviest: dict[str, bytes] = {}
    heaviest_rows: dict[str, int] = {}
    for (kind, key), seen in ledger.seen.items():
        if len(seen) > heaviest_rows.get(kind, 0):
            heaviest[kind], heaviest_rows[kind] = key, len(seen)
    hour_ago = now - timedelta(hours=1)
    return Seed(
        population=population,
        recent=[buyer for buyer in population.buyers if buyer.recent],
        statuses=statuses,
        analyses=len(orders),
        subjects=len(subjects),
        in_last_hour=sum(1 for prior in orders if prior.at >= hour_ago),
        heaviest=heaviest,
        heaviest_rows=heaviest_rows,
        build_seconds=build_seconds,
        insert_seconds=insert_seconds,
    )


# ----------------------------------------------------------------------------- query plans


@dataclass
class Plan:
    query: str
    plan: list[str]
    mean_ms: float


RepositoryCall = Callable[[AntifraudRepository], Awaitable[object]]


def plan_queries(merchant_id: uuid.UUID, seeded: Seed) -> list[tuple[str, RepositoryCall]]:
    """The look-ups of one decision, on the busiest seeded subjects and on unseen ones."""
    now, rows = utcnow(), seeded.heaviest_rows
    card, email, ip = seeded.heaviest["card"], seeded.heaviest["email"], seeded.heaviest["ip"]
    unseen = secrets.token_bytes(32)
    # A buyer who ordered in the last hour: the 1-hour window holds rows.
    lately = seeded.recent[0].keys[0]["email"] if seeded.recent else unseen

    def tally(kind: str, key: bytes, seconds: int) -> RepositoryCall:
        since = now - timedelta(seconds=seconds)
        return lambda repo: repo.history(merchant_id, [(kind, key, seconds, since)], [])

    def seen_before(kind: str, key: bytes) -> RepositoryCall:
        return lambda repo: repo.history(merchant_id, [], [(kind, key)])

    def whole_decision() -> RepositoryCall:
        """Everything the default rules ask, in the one statement a decision sends."""
        rules = default_rules().rules
        keys = {"card": card, "email": email, "ip": ip}
        windows = [
            (kind, keys.get(kind, unseen), seconds, now - timedelta(seconds=seconds))
            for kind, seconds in sorted(rules.windows())
        ]
        identities = [(kind, keys.get(kind, unseen)) for kind in sorted(rules.identities())]
        return lambda repo: repo.history(merchant_id, windows, identities)

    return [
        (f"tally card 24h, busiest card ({rows['card']} rows in all)", tally("card", card, 86_400)),
        ("tally card 1h, unseen card", tally("card", unseen, 3_600)),
        ("tally email 1h, a buyer of the last hour", tally("email", lately, 3_600)),
        (f"tally ip 10m, busiest IP ({rows['ip']} rows in all)", tally("ip", ip, 600)),
        (f"exists email, busiest email ({rows['email']} rows)", seen_before("email", email)),
        ("exists email, unseen email", seen_before("email", unseen)),
        ("one decision's history (default rules, busiest subjects)", whole_decision()),
    ]


async def explain(database: Database, name: str, call: RepositoryCall) -> Plan:
    """The SQL and parameters the repository sends, as the driver got them, explained; then its
    mean time over PLAN_RUNS executions through the repository."""
    captured: list[tuple[str, Any]] = []

    def capture(*args: Any) -> None:
        captured.append((args[2], args[3]))  # connection, cursor, statement, parameters, ...

    engine = database.read_engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        async with database.reader() as session:
            await call(AntifraudRepository(session))
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[-1]
    async with database.reader() as session:
        connection = await session.connection()
        command = "EXPLAIN QUERY PLAN" if database.is_sqlite else "EXPLAIN (ANALYZE, COSTS OFF)"
        found: list[Any] = list(
            await connection.exec_driver_sql(f"{command} {statement}", parameters)
        )
        # The step is the last column on both. PostgreSQL writes the parameters' values into
        # its plan: `?` keeps the 64-digit digests off the page.
        plan = [LITERAL.sub(r"?::\1", str(row[-1])) for row in found]
        repo = AntifraudRepository(session)
        started = time.perf_counter()
        for _ in range(PLAN_RUNS):
            await call(repo)
        mean_ms = (time.perf_counter() - started) / PLAN_RUNS * 1000
    return Plan(name, plan, mean_ms)


# ----------------------------------------------------------------------------- load


def answers(transaction_id: str, first_purchase: bool) -> giftcards.Check:
    """200 with the order's id, a tid and a known status; the first-purchase rule fired iff
    `first_purchase`."""

    def check(document: Any) -> bool:
        if not isinstance(document, dict) or document.get("id") != transaction_id:
            return False
        responses = document.get("responses")
        return (
            document.get("status") in ANSWERS
            and bool(document.get("tid"))
            and isinstance(responses, dict)
            and (FIRST_PURCHASE.name in responses) == first_purchase
        )

    return check


@dataclass
class Load:
    population: Population
    recent: list[Buyer]
    numbers: Iterator[int]  # of new buyers
    rng: random.Random = field(default_factory=random.Random)

    def calls(self, count: int) -> list[giftcards.Call]:
        """`count` new orders: returning buyers, buyers of the last hour, new buyers."""
        rng, calls = self.rng, []
        for _ in range(count):
            draw = rng.random()
            if draw >= RETURNING_SHARE + RECENT_LOAD_SHARE:
                buyer = make_buyer(next(self.numbers), self.population, rng)
            elif draw >= RETURNING_SHARE and self.recent:
                buyer = rng.choice(self.recent)
            else:
                buyer = rng.choice(self.population.buyers)
            new = not buyer.facts
            amount = draw_amount(buyer, rng)
            transaction_id = uuid.uuid4().hex.upper()
            ip = self.population.ips[rng.choice(buyer.ips)].address
            body = order_body(buyer, rng.choice(buyer.cards), ip, amount, transaction_id, rng,
                              as_typed=not new)  # fmt: skip
            first = new and from_minor(amount, CURRENCY) > FIRST_PURCHASE.above
            content = json.dumps(body).encode()
            calls.append(
                giftcards.Call("POST", TRANSACTIONS_PATH, content, answers(transaction_id, first))
            )
        return calls


@dataclass
class Phase:
    concurrency: int
    row: giftcards.Row  # its `cards`: the analyses in the database when the loop started
    decisions: Counter[str]


async def drive(
    database: str,
    base_url: str,
    credentials: dict[str, str],
    seeded: Seed,
    args: argparse.Namespace,
) -> tuple[list[Phase], int]:
    """The warm-up, then one closed loop per concurrency; the phases and how many were sent."""
    buyers = len(seeded.population.buyers)
    load = Load(seeded.population, seeded.recent, iter(range(buyers, 10**9)))
    headers = {
        "X-PROVIDER-API-AppKey": credentials["appKey"],
        "X-PROVIDER-API-AppToken": credentials["appToken"],
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    widest = max(args.concurrency)
    limits = httpx.Limits(max_connections=widest, max_keepalive_connections=widest)
    phases: list[Phase] = []
    sent = 0
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=giftcards.REQUEST_TIMEOUT_SECONDS) as client:  # fmt: skip
        warmup, _ = await giftcards.closed_loop(client, load.calls(args.warmup), widest)
        sent += len(warmup)
        for outcome in warmup:
            if outcome.problem:
                print(f"[{database}] warm-up error: {outcome.problem}", file=sys.stderr)
        for concurrency in args.concurrency:
            calls = load.calls(args.requests)  # built before the clock starts
            outcomes, duration = await giftcards.closed_loop(client, calls, concurrency)
            row = giftcards.summarise(database, seeded.analyses + sent, str(concurrency),
                                      outcomes, duration)  # fmt: skip
            decisions = Counter(o.document["status"] for o in outcomes if o.problem is None)
            phases.append(Phase(concurrency, row, decisions))
            sent += len(calls)
    return phases, sent


# ----------------------------------------------------------------------------- after the run


@dataclass
class After:
    analyses: int
    expected: int
    duplicate_ids: int
    duplicate_tids: int
    by_load: Counter[str]  # statuses of the analyses stored after the seeding
    subjects: int

    @property
    def consistent(self) -> bool:
        return self.analyses == self.expected and not self.duplicate_ids and not self.duplicate_tids


async def check_after(url: str, seeded: Seed, sent: int, load_started: datetime) -> After:
    a = AntifraudAnalysis
    database = Database(url)
    try:
        async with database.reader() as session:

            async def count(query: Any) -> int:
                return int(await session.scalar(query) or 0)

            def twice(*columns: Any) -> Any:
                grouped = select(*columns).group_by(*columns).having(func.count() > 1)
                return select(func.count()).select_from(grouped.subquery())

            statuses = await session.execute(
                select(a.status, func.count())
                .where(a.created_at >= load_started)
                .group_by(a.status)
            )
            return After(
                analyses=await count(select(func.count()).select_from(a)),
                expected=seeded.analyses + sent,
                duplicate_ids=await count(twice(a.merchant_id, a.transaction_id)),
                duplicate_tids=await count(twice(a.tid)),
                by_load=Counter({status: int(n) for status, n in statuses.all()}),
                subjects=await count(select(func.count()).select_from(AntifraudSubject)),
            )
    finally:
        await database.dispose()


# ----------------------------------------------------------------------------- one database


@dataclass
class Report:
    database: str
    seed: Seed
    migrate_seconds: float
    plans: list[Plan]
    phases: list[Phase]
    sent: int
    after: After


async def prepare(
    url: str, env: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, str], Seed, list[Plan]]:
    """The merchant, the analyses and the plans; the credentials as `connector merchants add`
    prints them."""
    database = Database(url)
    try:
        merchants = MerchantService(database)
        issued = await merchants.add("bench")
        merchant = await merchants.by_name("bench")
        assert merchant is not None
        cipher = FieldCipher([SecretStr(env["CONNECTOR_ENCRYPTION_KEYS"])])
        blind_index = BlindIndex.from_secret(SecretStr(env["CONNECTOR_BLIND_INDEX_KEY"]))
        seeded = await seed(database, merchant.id, args, cipher, blind_index)
        plans = []
        if args.explain:
            for name, call in plan_queries(merchant.id, seeded):
                plans.append(await explain(database, name, call))
    finally:
        await database.dispose()
    return issued.as_json(), seeded, plans


def benchmark(database: str, args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix=f"bench-antifraud-{database}-") as tmp:
        # Also the server's working directory: no `.env` of the checkout leaks in.
        workdir = Path(tmp)
        with base.database_url(database, workdir) as url:
            env = base.server_environment(url)
            # Explicit, so the seeding and the server key the subjects alike whatever the
            # encryption key (the blind index falls back to the first one otherwise).
            env["CONNECTOR_BLIND_INDEX_KEY"] = secrets.token_urlsafe(32)
            started = time.perf_counter()
            upgrade(url)
            migrate_seconds = time.perf_counter() - started
            credentials, seeded, plans = asyncio.run(prepare(url, env, args))
            print(f"[{database}] {seed_line(seeded)}", file=sys.stderr, flush=True)
            port = base.free_port()
            base_url = f"http://{base.HOST}:{port}"
            log_path = workdir / "server.log"
            process = base.start_server(env, workdir, port, 1, log_path)
            try:
                base.wait_until_live(process, base_url, log_path, "/health/ready")
                load_started = utcnow()
                phases, sent = asyncio.run(drive(database, base_url, credentials, seeded, args))
                if process.poll() is not None:
                    raise base.BenchmarkError(
                        f"server exited with {process.returncode} during the run:\n"
                        f"{base.log_tail(log_path)}"
                    )
            finally:
                base.stop_server(process)
            if any(phase.row.errors for phase in phases):
                print(f"[{database}] server log (last lines):\n{base.log_tail(log_path)}",
                      file=sys.stderr)  # fmt: skip
            after = asyncio.run(check_after(url, seeded, sent, load_started))
    return Report(database, seeded, migrate_seconds, plans, phases, sent, after)


# ----------------------------------------------------------------------------- output


def seed_line(seeded: Seed) -> str:
    return (
        f"seeded {seeded.analyses} analyses of {len(seeded.population.buyers)} buyers and "
        f"{seeded.subjects} subjects in {seeded.seconds:.1f} s "
        f"(building rows {seeded.build_seconds:.1f} s, inserts {seeded.insert_seconds:.1f} s)"
    )


def seeding_table(reports: Sequence[Report]) -> str:
    return base.render_table(
        ("database", "analyses", "approved", "denied", "undefined", "manual", "last hour")
        + ("subjects", "migrate s", "build s", "insert s", "seed s", "rows/s"),
        [
            (
                r.database,
                r.seed.analyses,
                r.seed.statuses["approved"],
                r.seed.statuses["denied"],
                r.seed.statuses[UNDEFINED],
                r.seed.statuses["manual"],
                r.seed.in_last_hour,
                r.seed.subjects,
                f"{r.migrate_seconds:.1f}",
                f"{r.seed.build_seconds:.1f}",
                f"{r.seed.insert_seconds:.1f}",
                f"{r.seed.seconds:.1f}",
                f"{(r.seed.analyses + r.seed.subjects) / r.seed.seconds:.0f}",
            )
            for r in reports
        ],
        text=1,
    )


def plans_text(reports: Sequence[Report]) -> str:
    lines = []
    for report in reports:
        for plan in report.plans:
            lines.append(f"[{report.database}] {plan.query}: {plan.mean_ms:.2f} ms")
            lines.extend(f"    {step}" for step in plan.plan)
    return "\n".join(lines)


def load_table(reports: Sequence[Report]) -> str:
    return base.render_table(
        ("database", "before", "conc", "requests", "errors", "approved", "denied", "received")
        + ("req/s", "p50 ms", "p95 ms", "p99 ms", "max ms"),
        [
            (
                report.database,
                phase.row.cards,
                phase.concurrency,
                phase.row.requests,
                phase.row.errors,
                phase.decisions["approved"],
                phase.decisions["denied"],
                phase.decisions["received"],
                f"{phase.row.throughput:.1f}",
                f"{phase.row.p50_ms:.1f}",
                f"{phase.row.p95_ms:.1f}",
                f"{phase.row.p99_ms:.1f}",
                f"{phase.row.max_ms:.1f}",
            )
            for report in reports
            for phase in report.phases
        ],
        text=1,
    )


def after_table(reports: Sequence[Report]) -> str:
    return base.render_table(
        ("database", "analyses", "seeded+sent", "ids twice", "tids twice", "load approved")
        + ("load denied", "load undefined", "subjects"),
        [
            (
                r.database,
                r.after.analyses,
                r.after.expected,
                r.after.duplicate_ids,
                r.after.duplicate_tids,
                r.after.by_load["approved"],
                r.after.by_load["denied"],
                r.after.by_load[UNDEFINED],
                r.after.subjects,
            )
            for r in reports
        ],
        text=1,
    )


def command_line() -> str:
    """How this run was started, in the documented `-m` form."""
    if __spec__ is None:  # run as a file
        return shlex.join([Path(sys.executable).name, *sys.argv])
    return shlex.join([Path(sys.executable).name, "-m", __spec__.name, *sys.argv[1:]])


def problems(report: Report) -> list[str]:
    found = [
        f"concurrency {phase.concurrency}: {phase.row.errors} of {phase.row.requests} failed"
        for phase in report.phases
        if phase.row.errors
    ]
    after = report.after
    if after.analyses != after.expected:
        found.append(f"{after.analyses} analyses stored, {after.expected} expected (seeded+sent)")
    if after.duplicate_ids or after.duplicate_tids:
        found.append(f"stored twice: {after.duplicate_ids} ids, {after.duplicate_tids} tids")
    return found


# ----------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Anti-fraud decisions against a local `connector serve` on a large history.",
    )
    parser.add_argument("--database", choices=(*base.DATABASES, "both"), default="both")
    parser.add_argument("--prior", type=int, default=100_000, help="analyses seeded")
    parser.add_argument("--buyers", type=int, default=30_000, help="buyers they belong to")
    parser.add_argument("--requests", type=int, default=2000, help="analyses per concurrency")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[1, 16], help="requests in flight"
    )
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured analyses first")
    parser.add_argument("--batch", type=int, default=5000, help="rows per bulk INSERT")
    parser.add_argument(
        "--explain",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="print the plans of the velocity and first-purchase queries (default: yes)",
    )
    args = parser.parse_args(argv)
    for name in ("prior", "buyers", "requests", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or min(args.concurrency) < 1:
        parser.error("--warmup must be >= 0 and --concurrency at least 1")
    if args.buyers * MAX_ORDERS < args.prior:
        parser.error(f"--buyers must be at least --prior / {MAX_ORDERS} (1 to 10 orders each)")
    args.databases = list(base.DATABASES) if args.database == "both" else [args.database]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    reports: list[Report] = []
    failed = False
    for database in args.databases:
        try:
            report = benchmark(database, args)
        except base.Skipped as reason:
            print(f"[{database}] skipped: {reason}", file=sys.stderr)
            continue
        except base.BenchmarkError as error:
            print(f"[{database}] failed: {error}", file=sys.stderr)
            failed = True
            continue
        for phase in report.phases:
            for sample in phase.row.error_samples:
                print(f"[{database} c={phase.concurrency}] {sample}", file=sys.stderr)
        found = problems(report)
        for problem in found:
            print(f"[{database}] {problem}", file=sys.stderr)
        failed = failed or bool(found)
        reports.append(report)
    if reports:
        print("seeding", seeding_table(reports), sep="\n", end="\n\n")
        if any(report.plans for report in reports):
            print(
                "query plans (mean time of one execution through AntifraudRepository)",
                plans_text(reports),
                sep="\n",
                end="\n\n",
            )
        print("load: POST /antifraud/transactions", load_table(reports), sep="\n", end="\n\n")
        print("after the run", after_table(reports), sep="\n", end="\n\n")
        consistent = all(report.after.consistent for report in reports)
        print(f"every analysis stored once: {'yes' if consistent else 'no'}")
    print(f"machine: {base.machine_description()}")
    print(f"command: {command_line()}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
