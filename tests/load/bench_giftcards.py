"""Load benchmark of the Gift Card Provider Protocol (`/giftcard`) on a realistically large ledger.

What it measures
    For each database (SQLite and/or PostgreSQL) the script builds a throw-away deployment: a
    temporary SQLite file or a fresh PostgreSQL database, the migrations
    (`connector.db.migrate.upgrade`) and one merchant (`MerchantService.add`). It then seeds
    `--cards` gift cards (100,000 by default) straight into the tables with bulk Core INSERTs, in
    batches, exactly as the service would have written them:

      every card   issued like `GiftCardService.issue` (random id, redemption token and code, the
                   code's SHA-256 digest and last group, an owner's blind index and encrypted
                   email; one card in 10 restricted to its owner, one in 3 expiring in a year)
                   and loaded like `GiftCardLedger._credit`: a Credit transaction (settled when
                   made), its settlement operation and its `credit` ledger entry
      a fraction   (`--prior-debits`, 20 %) also has one earlier Debit from the Hub: mostly
                   settled weeks ago (transaction, `hold` and `settle` entries, settlement
                   operation), one in ten still held (transaction and `hold` entry)

    Owners have four cards each. The seeding time is reported. On PostgreSQL the tables are then
    ANALYZEd, as autovacuum would do within a minute of such a load; on SQLite nothing is, since
    neither the service nor SQLite runs ANALYZE by itself.

    `connector serve` then runs as a subprocess on that database (one worker, background workers
    on, as in production) and, once `/health/ready` answers, this script plays the Gift Card Hub
    with the merchant's X-PROVIDER-API-AppKey/AppToken. Each operation is a closed loop of C
    concurrent tasks (`--concurrency`, 16) sharing one keep-alive `httpx.AsyncClient`; each task
    sends its next request as soon as the previous one answered:

      get        `GET /giftcards/{id}` of random seeded cards, with the Hub's `ts` cache-buster
                 (after `--warmup` unmeasured ones); the answer must name the card
      debit      `POST /giftcards/{id}/transactions`, a Debit of 1.00 to 5.00 with the card's
                 redemptionToken, on distinct random cards; the answer must carry an id
      search     `POST /giftcards/_search` by a random owner's email (as the Hub sends it, with a
                 client id and document that match nothing); the answer must list exactly the
                 owner's cards
      settle     `POST …/transactions/{id}/settlements` of each debit's full value (unless
                 `--no-settle`); the answer must carry an oid

    After the server stopped, three SQL queries check the whole ledger: every card's
    `available_minor`/`held_minor` against the sums of its `giftcard_entries` deltas, every
    transaction's settled, released and refunded totals against its operations, and every
    transaction against the entries it wrote.

How to read the table
    cards in DB  rows of `giftcards` when the load ran
    errors       answers that were not 200 or not the expected body (samples go to stderr)
    req/s        requests divided by the wall-clock time of that operation's loop
    p50..max     per-request latency seen by the client, in milliseconds; with a closed loop,
                 latency is roughly C / throughput, so it includes queueing inside the server
    bad …        in the ledger table: cards whose totals differ from their entries, transactions
                 whose totals differ from their operations, or from their entries (all 0 when
                 consistent; the same check runs on the seeded data before the load)

    The load generator runs on the same machine as the server and competes with it for CPU:
    compare runs made on the same machine with the same options. The script exits with 1 when
    a request failed, when the p99 of `get` exceeds 1500 ms (the Gift Card Hub's limit), when
    the ledger is inconsistent, or when a set-up step failed.

Usage
    .venv/bin/python -m tests.load.bench_giftcards [--database sqlite|postgresql|both]
        [--cards 100000] [--requests 2000] [--debits 1000] [--searches 300] [--concurrency 16]
        [--warmup 50] [--prior-debits 0.2] [--batch 5000] [--no-settle]

PostgreSQL comes from CONNECTOR_BENCH_POSTGRES_URL as in bench_authorize.py (default
postgresql+asyncpg://postgres@127.0.0.1:5432/test); the script creates `bench_<random>` there
and drops it at the end, and deletes its temporary directory, whatever happens. Everything it
sends goes to 127.0.0.1, and it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import secrets
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
from pydantic import SecretStr
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from connector.db.engine import Database
from connector.db.migrate import upgrade
from connector.db.tables import (
    GiftCard,
    GiftCardEntry,
    GiftCardOperation,
    GiftCardTransaction,
    utcnow,
)
from connector.merchants import MerchantService
from connector.security import (
    REDEMPTION_ALPHABET,
    REDEMPTION_SYMBOLS,
    BlindIndex,
    FieldCipher,
    generate_public_id,
    generate_redemption_token,
    normalize_redemption_code,
    redemption_code_digest,
)
from connector.settings import Settings
from tests.load import bench_authorize as base

GIFTCARD_PREFIX = "/giftcard"
SEARCH_PATH = f"{GIFTCARD_PREFIX}/giftcards/_search"
VENDOR_JSON = "application/vnd.vtex.giftcards.v1+json"
HUB_P99_LIMIT_MS = 1500.0
REQUEST_TIMEOUT_SECONDS = 30.0
CARDS_PER_OWNER = 4
RESTRICTED_EVERY = 10  # every 10th card pays only for its owner
EXPIRING_EVERY = 3  # every 3rd card expires in a year, the others never
HELD_SHARE = 0.1  # of the prior debits, those still held (the rest were settled)
HOLD_SECONDS = int(Settings.model_fields["giftcard_hold_seconds"].default)
CURRENCY = "BRL"
SQLITE_SEED_CACHE_KIB = 256 * 1024  # the seeding connection's page cache (the server keeps its own)


# ----------------------------------------------------------------------------- seeding


@dataclass(frozen=True, slots=True)
class Owner:
    email: str
    digest: bytes  # the blind index of the email, as `_search` looks it up
    encrypted: bytes  # the email, Fernet-encrypted, as `issue` stores it


@dataclass(frozen=True, slots=True)
class SeededCard:
    card_id: str
    redemption_token: str
    code_last4: str
    owner: Owner


@dataclass
class Batch:
    """Rows of one bulk INSERT per table, in foreign-key order."""

    cards: list[dict[str, Any]] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> list[tuple[Table, list[dict[str, Any]]]]:
        return [
            (cast(Table, GiftCard.__table__), self.cards),
            (cast(Table, GiftCardTransaction.__table__), self.transactions),
            (cast(Table, GiftCardOperation.__table__), self.operations),
            (cast(Table, GiftCardEntry.__table__), self.entries),
        ]


@dataclass(repr=False)
class Seed:
    cards: list[SeededCard]
    owners: list[Owner]
    cards_per_owner: Counter[str]
    prior_debits: int
    rows: int
    build_seconds: float
    insert_seconds: float

    @property
    def seconds(self) -> float:
        return self.build_seconds + self.insert_seconds

    def __repr__(self) -> str:
        # Short: asyncio.run formats the main task's result into an exception message on the way
        # out (CPython 3.11), and a full dataclass repr of 100,000 cards costs seconds.
        return f"<Seed of {len(self.cards)} cards, {self.rows} rows>"


# `secrets.choice` per symbol costs about 1.6 million calls for 100,000 codes. Ten random bytes
# are exactly the 80 bits of a code: base32 cuts them into 16 five-bit symbols, mapped one to one
# onto the redemption alphabet, so the codes are as uniform as `generate_redemption_code`'s.
_BASE32_TO_REDEMPTION = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", REDEMPTION_ALPHABET)


def fast_redemption_code() -> str:
    symbols = base64.b32encode(secrets.token_bytes(REDEMPTION_SYMBOLS * 5 // 8)).decode()
    symbols = symbols.translate(_BASE32_TO_REDEMPTION)
    return "-".join(symbols[i : i + 4] for i in range(0, REDEMPTION_SYMBOLS, 4))


def make_owners(count: int, cipher: FieldCipher, blind_index: BlindIndex) -> list[Owner]:
    emails = (f"shopper{number:06d}@bench.example" for number in range(count))
    return [Owner(email, blind_index.digest(email), cipher.encrypt_json(email)) for email in emails]


def entry_row(
    card_pk: uuid.UUID,
    transaction_pk: uuid.UUID,
    kind: str,
    available_delta: int,
    held_delta: int,
    at: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    return {"card_pk": card_pk, "transaction_pk": transaction_pk, "kind": kind,
            "available_delta": available_delta, "held_delta": held_delta, "note": note,
            "created_at": at}  # fmt: skip


def transaction_row(
    card_pk: uuid.UUID, operation: str, amount: int, at: datetime, **values: Any
) -> dict[str, Any]:
    row = {"id": uuid.uuid4(), "card_pk": card_pk, "transaction_id": generate_public_id(),
           "request_id": uuid.uuid4().hex.upper(), "operation": operation, "amount_minor": amount,
           "settled_minor": 0, "released_minor": 0, "refunded_minor": 0, "description": None,
           "order_id": None, "hold_expires_at": None, "created_at": at}  # fmt: skip
    row.update(values)
    return row


def settlement_row(transaction: dict[str, Any], amount: int, at: datetime) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "oid": generate_public_id(), "transaction_pk": transaction["id"],
            "kind": "settlement", "request_id": transaction["request_id"], "amount_minor": amount,
            "created_at": at}  # fmt: skip


def add_card(
    batch: Batch,
    index: int,
    merchant_id: uuid.UUID,
    owner: Owner,
    now: datetime,
    rng: random.Random,
) -> tuple[SeededCard, dict[str, Any]]:
    """A card as `GiftCardService.issue` writes it, loaded as `GiftCardLedger._credit` does."""
    code = fast_redemption_code()
    created = now - timedelta(days=rng.uniform(60, 365))
    loaded = rng.randint(50_00, 500_00)
    card: dict[str, Any] = {
        "id": uuid.uuid4(), "merchant_id": merchant_id, "card_id": generate_public_id(),
        "redemption_token": generate_redemption_token(),
        "code_digest": redemption_code_digest(code),
        "code_last4": normalize_redemption_code(code)[-4:],
        "relation_name": f"giftcard-{uuid.uuid4().hex[:12]}", "caption": "Bench gift card",
        "owner_digest": owner.digest, "owner": owner.encrypted,
        "restricted_to_owner": index % RESTRICTED_EVERY == 0,
        "multiple_redemptions": True, "multiple_credits": True, "currency": CURRENCY,
        "status": "active", "status_reason": None, "emission_date": created,
        "expiring_date": now + timedelta(days=365) if index % EXPIRING_EVERY == 0 else None,
        "available_minor": loaded, "held_minor": 0, "redemptions": 0, "credits": 1,
        "created_at": created, "updated_at": created,
    }  # fmt: skip
    batch.cards.append(card)
    # `load`: requestId "issue", the note as description, settled when made.
    note = "issued by bench"
    credit = transaction_row(card["id"], "Credit", loaded, created, request_id="issue",
                             settled_minor=loaded, description=note)  # fmt: skip
    batch.transactions.append(credit)
    batch.entries.append(entry_row(card["id"], credit["id"], "credit", loaded, 0, created, note))
    batch.operations.append(settlement_row(credit, loaded, created))
    seeded = SeededCard(card["card_id"], card["redemption_token"], card["code_last4"], owner)
    return seeded, card


def add_prior_debit(batch: Batch, card: dict[str, Any], now: datetime, rng: random.Random) -> None:
    """An earlier Debit of the Hub, as `_debit` (and, when settled, `_operate`) wrote it."""
    amount = rng.randint(1_00, card["available_minor"] // 5)
    settled = rng.random() >= HELD_SHARE
    # Settled ones weeks ago (their hold deadline has passed, as `_settle` leaves it); held ones
    # in the last two days, so the hold-expiry worker has nothing to release during the run.
    created = now - timedelta(days=rng.uniform(1, 59) if settled else rng.uniform(0, 2))
    debit = transaction_row(
        card["id"], "Debit", amount, created, description="GiftCardHub",
        order_id=f"v{rng.randrange(10**9)}bch-01", settled_minor=amount if settled else 0,
        hold_expires_at=created + timedelta(seconds=HOLD_SECONDS),
    )  # fmt: skip
    batch.transactions.append(debit)
    batch.entries.append(entry_row(card["id"], debit["id"], "hold", -amount, amount, created))
    card["available_minor"] -= amount
    card["redemptions"] += 1
    card["updated_at"] = created
    if settled:
        settled_at = min(now, created + timedelta(hours=rng.uniform(1, 24)))
        batch.entries.append(entry_row(card["id"], debit["id"], "settle", 0, -amount, settled_at))
        batch.operations.append(settlement_row(debit, amount, settled_at))
        card["updated_at"] = settled_at
    else:
        card["held_minor"] += amount


async def insert_batch(connection: AsyncConnection, batch: Batch) -> int:
    rows = 0
    for table, values in batch.tables():
        if values:
            await connection.execute(insert(table), values)
            rows += len(values)
    return rows


async def seed(
    database: Database,
    merchant_id: uuid.UUID,
    args: argparse.Namespace,
    cipher: FieldCipher,
    blind_index: BlindIndex,
) -> Seed:
    """`args.cards` cards in batches of `args.batch`, one database transaction per batch."""
    # Amounts and dates only: ids, tokens and codes come from `secrets`.
    rng = random.Random()
    now = utcnow()
    started = time.perf_counter()
    owners = make_owners(max(1, args.cards // CARDS_PER_OWNER), cipher, blind_index)
    build_seconds = time.perf_counter() - started
    insert_seconds = 0.0
    cards: list[SeededCard] = []
    prior_debits = rows = 0
    for first in range(0, args.cards, args.batch):
        started = time.perf_counter()
        batch = Batch()
        for index in range(first, min(first + args.batch, args.cards)):
            owner = owners[index % len(owners)]
            seeded, card = add_card(batch, index, merchant_id, owner, now, rng)
            cards.append(seeded)
            if rng.random() < args.prior_debits:
                add_prior_debit(batch, card, now, rng)
                prior_debits += 1
        inserting = time.perf_counter()
        build_seconds += inserting - started
        async with database.write_engine.begin() as connection:
            if database.is_sqlite:
                # SQLite's default page cache is 2 MB; the random keys of 100,000 cards (ids,
                # digests, foreign keys) make every index outgrow it and each insert a cache miss.
                await connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_SEED_CACHE_KIB}")
            rows += await insert_batch(connection, batch)
        insert_seconds += time.perf_counter() - inserting
    if not database.is_sqlite:
        # What autovacuum does within a minute of a bulk load; not timed as seeding.
        async with database.write_engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    per_owner = Counter(card.owner.email for card in cards)
    return Seed(cards, owners, per_owner, prior_debits, rows, build_seconds, insert_seconds)


# ----------------------------------------------------------------------------- ledger check


# Each query counts the rows of one table whose totals disagree with what they are made of.
LEDGER_CHECKS = {
    # A card's running totals against the sums of its ledger entries.
    "cards": """
        SELECT COUNT(*) FROM giftcards AS c
        LEFT JOIN (SELECT card_pk, SUM(available_delta) AS available, SUM(held_delta) AS held
                   FROM giftcard_entries GROUP BY card_pk) AS e ON e.card_pk = c.id
        WHERE COALESCE(e.available, 0) <> c.available_minor
           OR COALESCE(e.held, 0) <> c.held_minor
    """,
    # A transaction's settled and cancelled totals against its settlements and cancellations.
    "transactions (operations)": """
        SELECT COUNT(*) FROM giftcard_transactions AS t
        LEFT JOIN (SELECT transaction_pk,
                          SUM(CASE WHEN kind = 'settlement' THEN amount_minor ELSE 0 END) AS s,
                          SUM(CASE WHEN kind = 'cancellation' THEN amount_minor ELSE 0 END) AS c
                   FROM giftcard_operations GROUP BY transaction_pk) AS o
               ON o.transaction_pk = t.id
        WHERE COALESCE(o.s, 0) <> t.settled_minor
           OR COALESCE(o.c, 0) <> t.released_minor + t.refunded_minor
    """,
    # A transaction against the entries it wrote: a Debit holds its amount and gives back what
    # was released or refunded, still holding what was neither settled nor released; a Credit
    # adds its amount less what was taken back, and never holds.
    "transactions (entries)": """
        SELECT COUNT(*) FROM giftcard_transactions AS t
        LEFT JOIN (SELECT transaction_pk, SUM(available_delta) AS available,
                          SUM(held_delta) AS held
                   FROM giftcard_entries GROUP BY transaction_pk) AS e
               ON e.transaction_pk = t.id
        WHERE COALESCE(e.available, 0) <> CASE WHEN t.operation = 'Debit'
                  THEN t.released_minor + t.refunded_minor - t.amount_minor
                  ELSE t.amount_minor - t.refunded_minor END
           OR COALESCE(e.held, 0) <> CASE WHEN t.operation = 'Debit'
                  THEN t.amount_minor - t.settled_minor - t.released_minor ELSE 0 END
    """,
}
COUNTED_TABLES = {
    "cards": GiftCard,
    "transactions": GiftCardTransaction,
    "operations": GiftCardOperation,
    "entries": GiftCardEntry,
}


@dataclass
class LedgerCheck:
    mismatches: dict[str, int]
    rows: dict[str, int]

    @property
    def consistent(self) -> bool:
        return not any(self.mismatches.values())


async def check_ledger(database: Database) -> LedgerCheck:
    async with database.reader() as session:
        mismatches = {
            name: int(await session.scalar(text(query)) or 0)
            for name, query in LEDGER_CHECKS.items()
        }
        rows = {
            name: int(await session.scalar(select(func.count()).select_from(table)) or 0)
            for name, table in COUNTED_TABLES.items()
        }
    return LedgerCheck(mismatches, rows)


# ----------------------------------------------------------------------------- load


Check = Callable[[Any], bool]  # the parsed JSON answer -> is it the expected one


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    body: bytes | None
    check: Check


@dataclass(frozen=True, slots=True)
class Outcome:
    latency: float
    status: int  # 0 when no answer arrived
    document: Any
    problem: str | None


@dataclass
class Row:
    database: str
    cards: int
    operation: str
    requests: int
    errors: int
    throughput: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    error_samples: list[str] = field(default_factory=list)


async def send(client: httpx.AsyncClient, call: Call) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.request(call.method, call.path, content=call.body)
    except httpx.HTTPError as error:
        return Outcome(time.perf_counter() - started, 0, None, f"no answer: {error!r}")
    latency = time.perf_counter() - started
    try:
        document = response.json()
    except ValueError:
        document = None
    problem = None
    if response.status_code != 200:
        problem = f"HTTP {response.status_code}: {response.text[:300]}"
    elif not call.check(document):
        problem = f"unexpected answer: {response.text[:300]}"
    return Outcome(latency, response.status_code, document, problem)


async def closed_loop(
    client: httpx.AsyncClient, calls: Sequence[Call], concurrency: int
) -> tuple[list[Outcome], float]:
    """Every call, by `concurrency` tasks that each send their next call as soon as the previous
    one answered; the outcomes in the order of `calls`, and the wall-clock seconds."""
    outcomes: list[Outcome | None] = [None] * len(calls)
    pending = iter(enumerate(calls))  # shared by the tasks

    async def worker() -> None:
        for index, call in pending:
            outcomes[index] = await send(client, call)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(calls))):
            group.create_task(worker())
    duration = time.perf_counter() - started
    return [outcome for outcome in outcomes if outcome is not None], duration


def summarise(
    database: str, cards: int, operation: str, outcomes: list[Outcome], duration: float
) -> Row:
    latencies = sorted(outcome.latency * 1000 for outcome in outcomes) or [float("nan")]
    failed = [outcome.problem for outcome in outcomes if outcome.problem is not None]
    return Row(
        database=database,
        cards=cards,
        operation=operation,
        requests=len(outcomes),
        errors=len(failed),
        throughput=len(outcomes) / duration if duration > 0 else 0.0,
        p50_ms=base.percentile(latencies, 0.50),
        p95_ms=base.percentile(latencies, 0.95),
        p99_ms=base.percentile(latencies, 0.99),
        max_ms=latencies[-1],
        error_samples=failed[: base.MAX_ERROR_SAMPLES],
    )


def card_path(card: SeededCard) -> str:
    return f"{GIFTCARD_PREFIX}/giftcards/{card.card_id}"


def names_card(card_id: str) -> Check:
    return lambda document: isinstance(document, dict) and document.get("id") == card_id


def has_key(key: str) -> Check:
    return lambda document: isinstance(document, dict) and bool(document.get(key))


def lists_cards(count: int) -> Check:
    return lambda document: isinstance(document, list) and len(document) == count


def get_calls(cards: Sequence[SeededCard], count: int, rng: random.Random) -> list[Call]:
    """GETs of random cards, each with the Hub's cache-buster."""
    calls = []
    for _ in range(count):
        card = rng.choice(cards)
        path = f"{card_path(card)}?ts={rng.randrange(10**18)}"
        calls.append(Call("GET", path, None, names_card(card.card_id)))
    return calls


@dataclass(frozen=True, slots=True)
class Debit:
    card: SeededCard
    value: float  # as the Hub sends it, a JSON number


def debit_calls(debits: Sequence[Debit]) -> list[Call]:
    """Debits as the Hub sends them (VTEX's example, trimmed): the redemption token, the code
    masked, the shopper's email (which cards restricted to their owner check)."""
    calls = []
    for sequence, debit in enumerate(debits, start=5_000_000):
        body = {"operation": "Debit", "value": debit.value, "description": "GiftCardHub",
                "redemptionToken": debit.card.redemption_token,
                "redemptionCode": "***********" + debit.card.code_last4,
                "requestId": uuid.uuid4().hex.upper(),
                "orderInfo": {"orderId": f"v{sequence}bch-01", "sequence": sequence,
                              "clientProfile": {"email": debit.card.owner.email,
                                                "isCorporate": False}}}  # fmt: skip
        path = f"{card_path(debit.card)}/transactions"
        calls.append(Call("POST", path, json.dumps(body).encode(), has_key("id")))
    return calls


def settle_calls(debits: Sequence[Debit], answers: Sequence[Outcome]) -> list[Call]:
    """The full value of every Debit that was answered, as the Hub settles an invoiced order."""
    calls = []
    for debit, answer in zip(debits, answers, strict=True):
        if answer.problem is None:
            path = f"{card_path(debit.card)}/transactions/{answer.document['id']}/settlements"
            body = {"value": debit.value, "requestId": f"settle-{uuid.uuid4().hex}"}
            calls.append(Call("POST", path, json.dumps(body).encode(), has_key("oid")))
    return calls


def search_calls(seeded: Seed, count: int, rng: random.Random) -> list[Call]:
    """The Hub's search at checkout by random owners: the shopper's id, email (as typed, in
    another case and with a space) and document; only the email finds cards."""
    calls = []
    for _ in range(count):
        owner = rng.choice(seeded.owners)
        body = {"client": {"id": uuid.uuid4().hex[:8], "email": f" {owner.email.capitalize()}",
                           "document": str(rng.randrange(10**10, 10**11))},
                "cart": {"grandTotal": 182, "relationName": None, "redemptionCode": None,
                         "discounts": 20, "shipping": 2, "taxes": 0, "items": [],
                         "itemsTotal": 200}}  # fmt: skip
        expected = lists_cards(seeded.cards_per_owner[owner.email])
        calls.append(Call("POST", SEARCH_PATH, json.dumps(body).encode(), expected))
    return calls


def hub_headers(credentials: dict[str, str]) -> dict[str, str]:
    return {
        "X-PROVIDER-API-AppKey": credentials["appKey"],
        "X-PROVIDER-API-AppToken": credentials["appToken"],
        "Accept": VENDOR_JSON,
        "Content-Type": VENDOR_JSON,
    }


async def drive(
    database: str,
    base_url: str,
    credentials: dict[str, str],
    seeded: Seed,
    cards_in_db: int,
    args: argparse.Namespace,
) -> list[Row]:
    rng = random.Random()  # which cards and amounts, nothing secret
    cards = seeded.cards
    debits = [Debit(card, rng.randint(100, 500) / 100) for card in rng.sample(cards, args.debits)]
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    rows: list[Row] = []
    async with httpx.AsyncClient(
        base_url=base_url,
        headers=hub_headers(credentials),
        limits=limits,
        timeout=REQUEST_TIMEOUT_SECONDS,
    ) as client:

        async def measure(operation: str, calls: list[Call]) -> list[Outcome]:
            outcomes, duration = await closed_loop(client, calls, args.concurrency)
            rows.append(summarise(database, cards_in_db, operation, outcomes, duration))
            return outcomes

        warmup, _ = await closed_loop(client, get_calls(cards, args.warmup, rng), args.concurrency)
        for outcome in warmup:
            if outcome.problem:
                print(f"[{database}] warm-up error: {outcome.problem}", file=sys.stderr)
        await measure("get", get_calls(cards, args.requests, rng))
        answers = await measure("debit", debit_calls(debits))
        await measure("search", search_calls(seeded, args.searches, rng))
        if args.settle:
            await measure("settle", settle_calls(debits, answers))
    return rows


# ----------------------------------------------------------------------------- one database


@dataclass
class Report:
    database: str
    seed: Seed
    migrate_seconds: float
    rows: list[Row]
    ledger: LedgerCheck


async def prepare(
    url: str, env: dict[str, str], args: argparse.Namespace
) -> tuple[dict[str, str], Seed]:
    """The merchant, then the cards; the credentials as `connector merchants add` prints them."""
    database = Database(url)
    try:
        merchants = MerchantService(database)
        issued = await merchants.add("bench")
        merchant = await merchants.by_name("bench")
        assert merchant is not None
        cipher = FieldCipher([SecretStr(env["CONNECTOR_ENCRYPTION_KEYS"])])
        blind_index = BlindIndex.from_secret(SecretStr(env["CONNECTOR_BLIND_INDEX_KEY"]))
        seeded = await seed(database, merchant.id, args, cipher, blind_index)
    finally:
        await database.dispose()
    return issued.as_json(), seeded


async def ledger_of(url: str) -> LedgerCheck:
    database = Database(url)
    try:
        return await check_ledger(database)
    finally:
        await database.dispose()


def benchmark(database: str, args: argparse.Namespace) -> Report:
    with tempfile.TemporaryDirectory(prefix=f"bench-giftcards-{database}-") as tmp:
        # Also the server's working directory: no `.env` of the checkout leaks in.
        workdir = Path(tmp)
        with base.database_url(database, workdir) as url:
            env = base.server_environment(url)
            env["CONNECTOR_BLIND_INDEX_KEY"] = secrets.token_urlsafe(32)
            started = time.perf_counter()
            upgrade(url)
            migrate_seconds = time.perf_counter() - started
            credentials, seeded = asyncio.run(prepare(url, env, args))
            print(f"[{database}] {seed_line(seeded)}", file=sys.stderr, flush=True)
            seeded_ledger = asyncio.run(ledger_of(url))
            if not seeded_ledger.consistent:  # a bug of this script, not of the service
                raise base.BenchmarkError(f"the seeded ledger is inconsistent: {seeded_ledger}")
            cards_in_db = seeded_ledger.rows["cards"]
            port = base.free_port()
            base_url = f"http://{base.HOST}:{port}"
            log_path = workdir / "server.log"
            process = base.start_server(env, workdir, port, 1, log_path)
            try:
                base.wait_until_live(process, base_url, log_path, "/health/ready")
                rows = asyncio.run(
                    drive(database, base_url, credentials, seeded, cards_in_db, args)
                )
                if process.poll() is not None:
                    raise base.BenchmarkError(
                        f"server exited with {process.returncode} during the run:\n"
                        f"{base.log_tail(log_path)}"
                    )
            finally:
                base.stop_server(process)
            if any(row.errors for row in rows):
                print(f"[{database}] server log (last lines):\n{base.log_tail(log_path)}",
                      file=sys.stderr)  # fmt: skip
            ledger = asyncio.run(ledger_of(url))
    return Report(database, seeded, migrate_seconds, rows, ledger)


# ----------------------------------------------------------------------------- output


def seed_line(seeded: Seed) -> str:
    return (
        f"seeded {len(seeded.cards)} cards ({seeded.prior_debits} with a prior debit), "
        f"{seeded.rows} rows in {seeded.seconds:.1f} s "
        f"(building rows {seeded.build_seconds:.1f} s, inserts {seeded.insert_seconds:.1f} s)"
    )


def seeding_table(reports: Sequence[Report]) -> str:
    return base.render_table(
        ("database", "cards", "prior debits", "rows", "migrate s", "build s", "insert s")
        + ("seed s", "rows/s"),
        [
            (
                r.database,
                len(r.seed.cards),
                r.seed.prior_debits,
                r.seed.rows,
                f"{r.migrate_seconds:.1f}",
                f"{r.seed.build_seconds:.1f}",
                f"{r.seed.insert_seconds:.1f}",
                f"{r.seed.seconds:.1f}",
                f"{r.seed.rows / r.seed.seconds:.0f}",
            )
            for r in reports
        ],
        text=1,
    )


def load_table(reports: Sequence[Report]) -> str:
    return base.render_table(
        ("database", "cards in DB", "operation", "requests", "errors", "req/s")
        + ("p50 ms", "p95 ms", "p99 ms", "max ms"),
        [
            (
                row.database,
                row.cards,
                row.operation,
                row.requests,
                row.errors,
                f"{row.throughput:.1f}",
                f"{row.p50_ms:.1f}",
                f"{row.p95_ms:.1f}",
                f"{row.p99_ms:.1f}",
                f"{row.max_ms:.1f}",
            )
            for report in reports
            for row in report.rows
        ],
        text=3,
    )


def ledger_table(reports: Sequence[Report]) -> str:
    names = list(LEDGER_CHECKS)
    return base.render_table(
        ("database", *COUNTED_TABLES, *(f"bad {name}" for name in names)),
        [
            (r.database, *r.ledger.rows.values(), *(r.ledger.mismatches[n] for n in names))
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
        f"{row.operation}: {row.errors} of {row.requests} requests failed"
        for row in report.rows
        if row.errors
    ]
    for row in report.rows:
        if row.operation == "get" and not row.p99_ms <= HUB_P99_LIMIT_MS:
            found.append(f"get: p99 {row.p99_ms:.1f} ms exceeds the Hub's {HUB_P99_LIMIT_MS:g} ms")
    if not report.ledger.consistent:
        found.append(f"ledger inconsistent: {report.ledger.mismatches}")
    return found


# ----------------------------------------------------------------------------- main


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Gift Card Hub calls against a local `connector serve` on a large ledger.",
    )
    parser.add_argument("--database", choices=(*base.DATABASES, "both"), default="both")
    parser.add_argument("--cards", type=int, default=100_000, help="gift cards seeded")
    parser.add_argument("--requests", type=int, default=2000, help="measured GETs by id")
    parser.add_argument("--debits", type=int, default=1000, help="Debits, on distinct cards")
    parser.add_argument("--searches", type=int, default=300, help="searches by owner email")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured GETs first")
    parser.add_argument(
        "--settle",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="settle every debit afterwards (default: yes)",
    )
    parser.add_argument(
        "--prior-debits", type=float, default=0.2, help="share of cards with an earlier Debit"
    )
    parser.add_argument("--batch", type=int, default=5000, help="cards per bulk INSERT")
    args = parser.parse_args(argv)
    for name in ("cards", "requests", "debits", "searches", "concurrency", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0 or not 0 <= args.prior_debits <= 1:
        parser.error("--warmup must be >= 0 and --prior-debits between 0 and 1")
    if args.debits > args.cards:
        parser.error("--debits must not exceed --cards (each debit takes a distinct card)")
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
        for row in report.rows:
            for sample in row.error_samples:
                print(f"[{database} {row.operation}] {sample}", file=sys.stderr)
        found = problems(report)
        for problem in found:
            print(f"[{database}] {problem}", file=sys.stderr)
        failed = failed or bool(found)
        reports.append(report)
    if reports:
        print("seeding", seeding_table(reports), sep="\n", end="\n\n")
        print(f"load (concurrency {args.concurrency})", load_table(reports), sep="\n", end="\n\n")
        print("ledger after the run", ledger_table(reports), sep="\n", end="\n\n")
        consistent = all(report.ledger.consistent for report in reports)
        print(f"ledger consistent: {'yes' if consistent else 'no'}")
        within = all(
            row.p99_ms <= HUB_P99_LIMIT_MS
            for report in reports
            for row in report.rows
            if row.operation == "get"
        )
        print(f"get p99 within the Hub's {HUB_P99_LIMIT_MS:g} ms: {'yes' if within else 'no'}")
    print(f"machine: {base.machine_description()}")
    print(f"command: {command_line()}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
