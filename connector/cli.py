"""`connector serve | migrate | worker | merchants ... | giftcards ... | reviews ... | rules ... |
outbox ... | keys ...`"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from connector.antifraud import cli as antifraud_cli
from connector.db.engine import Database
from connector.errors import BadRequest, ConnectorError, NotFound
from connector.merchants import IssuedCredentials, MerchantService
from connector.settings import Settings

if TYPE_CHECKING:
    from connector.giftcards.cards import GiftCardService
    from protocol.admin import IssueCardItem

T = TypeVar("T")


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(settings.database_url)
        try:
            return await work(database)
        finally:
            await database.dispose()

    return asyncio.run(run())


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2))


# ----------------------------------------------------------------------------- commands


def serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve HTTP until SIGTERM or SIGINT, then stop gracefully: accept nothing new, let the
    requests in flight finish (up to 20 s), stop the background workers, close the database,
    exit 0."""
    import signal

    import uvicorn

    from connector.observability import configure_logging

    if settings.is_sqlite and args.workers > 1:
        print("SQLite has one writer: use PostgreSQL for more than one worker", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    # uvicorn raises the signal that stopped it again once it has shut down; a graceful stop
    # is a success (exit 0), not a death by signal, so the signal lands on a handler that does
    # nothing.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    with _metrics_directory(args.workers):
        uvicorn.run(
            "connector.app:create_app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            # Our logging (configure_logging) and our access log (one line per request, with
            # its request id, written by connector.observability.middleware).
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=20,
        )
    return 0


@contextmanager
def _metrics_directory(workers: int) -> Iterator[None]:
    """Several workers share their metrics through files in PROMETHEUS_MULTIPROC_DIR: a fresh
    temporary directory, removed on exit, unless the operator named one (emptied first)."""
    import os
    import tempfile
    from pathlib import Path

    from connector.observability.metrics import MULTIPROC_ENV, clear_multiprocess_directory

    named = os.environ.get(MULTIPROC_ENV)
    if named:
        clear_multiprocess_directory(Path(named))
        yield
        return
    if workers <= 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="connector-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


def migrate(args: argparse.Namespace, settings: Settings) -> int:
    from connector.db.migrate import upgrade

    upgrade(settings.database_url, args.revision)
    print(f"database at {args.revision}: {_safe_url(settings.database_url)}")
    return 0


def merchants_add(args: argparse.Namespace, settings: Settings) -> int:
    issued = _with_database(
        settings, lambda db: MerchantService(db).add(args.name, args.app_key, args.app_token)
    )
    _print_json(issued.as_json())
    return 0


def merchants_list(args: argparse.Namespace, settings: Settings) -> int:
    merchants = _with_database(settings, lambda db: MerchantService(db).list())
    _print_json(
        [
            {
                "name": m.name,
                "appKey": m.app_key,
                "createdAt": m.created_at.isoformat(),
                "tokenRotatedAt": m.token_rotated_at.isoformat(),
            }
            for m in merchants
        ]
    )
    return 0


def merchants_rotate(args: argparse.Namespace, settings: Settings) -> int:
    issued = _with_database(settings, lambda db: MerchantService(db).rotate_token(args.name))
    _print_json(issued.as_json())
    return 0


def merchants_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Create the demo merchant, or give it a fresh token: `make run` prints working credentials."""

    async def ensure(db: Database) -> IssuedCredentials:
        service = MerchantService(db)
        if await service.by_name(args.name) is None:
            return await service.add(args.name)
        return await service.rotate_token(args.name)

    _print_json(_with_database(settings, ensure).as_json())
    return 0


def keys_generate(args: argparse.Namespace, settings: Settings) -> int:
    from connector.security import generate_encryption_key

    print(generate_encryption_key())
    return 0


def keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from connector.keys import reencrypt_personal_data
    from connector.security import FieldCipher

    cipher = FieldCipher(settings.encryption_keys)
    count = _with_database(settings, lambda db: reencrypt_personal_data(db, cipher))
    print(f"re-encrypted {count} rows under the first key of CONNECTOR_ENCRYPTION_KEYS")
    return 0


def worker(args: argparse.Namespace, settings: Settings) -> int:
    """Deliver callbacks and hooks, reconcile pending payments, release expired gift card holds
    and decide overdue anti-fraud reviews, without serving HTTP (but `/metrics` with
    --metrics-port). SIGTERM or SIGINT: finish what is in hand, exit 0."""
    import signal

    from connector.app import background_workers, build_services, check_schema
    from connector.observability import configure_logging
    from connector.observability.metrics import start_metrics_server

    configure_logging(settings.log_level, settings.log_format)

    async def run() -> None:
        services = build_services(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await check_schema(services.database)
            async with background_workers(services):
                await stop.wait()
        finally:
            await services.close()

    server = None
    if args.metrics_port is not None:
        server = start_metrics_server(args.metrics_host, args.metrics_port, settings.metrics_token)
    try:
        asyncio.run(run())
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0


def outbox_list(args: argparse.Namespace, settings: Settings) -> int:
    from connector.outbox.repository import OutboxRepository

    async def fetch(db: Database) -> list[dict[str, object]]:
        async with db.reader() as session:
            messages = await OutboxRepository(session).messages(args.status, args.limit)
        return [
            {
                "id": str(m.id),
                "kind": m.kind,
                "status": m.status,
                "attempts": m.attempts,
                "url": m.url.split("?")[0],
                "paymentId": m.payload.get("paymentId"),
                "antifraudTransactionId": m.payload.get("id") if m.analysis_pk else None,
                "lastError": m.last_error,
                "createdAt": m.created_at.isoformat(),
                "deliveredAt": m.delivered_at.isoformat() if m.delivered_at else None,
            }
            for m in messages
        ]

    _print_json(_with_database(settings, fetch))
    return 0


def outbox_retry(args: argparse.Namespace, settings: Settings) -> int:
    import uuid
    from datetime import timedelta

    from connector.db.tables import utcnow
    from connector.outbox.repository import OutboxRepository

    ids = None if args.all else [uuid.UUID(value) for value in args.ids]
    if ids == []:
        print("name dead letters by id, or pass --all", file=sys.stderr)
        return 2

    async def retry(db: Database) -> int:
        now = utcnow()
        deadline = now + timedelta(seconds=settings.callback_deadline_seconds)
        async with db.writer() as session:
            return await OutboxRepository(session).retry(ids, now, deadline)

    print(f"{_with_database(settings, retry)} dead letters queued again")
    return 0


def callbacks_listen(args: argparse.Namespace, settings: Settings) -> int:
    """A callback receiver for local trials: prints each callback the connector sends."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        print(f"{request.method} {request.url}", flush=True)
        print(json.dumps(json.loads(body or b"null"), indent=2), flush=True)
        return JSONResponse({"received": True})

    app = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


# ----------------------------------------------------------------------------- gift cards


def _giftcards(database: Database, settings: Settings) -> GiftCardService:
    from connector.giftcards.cards import build_giftcards
    from connector.security import FieldCipher

    return build_giftcards(database, settings, FieldCipher(settings.encryption_keys))[0]


def _actor(args: argparse.Namespace) -> str:
    import getpass

    return str(args.actor or f"cli:{getpass.getuser()}")


def _issue_items(args: argparse.Namespace) -> list[IssueCardItem]:
    """One item from the flags, or one per row of `--csv` (a header row names the columns;
    empty cells take the defaults)."""
    import csv

    from pydantic import ValidationError

    from protocol.admin import IssueCardItem

    if args.csv is None:
        rows: list[dict[str, str]] = [
            {
                "amount": args.amount,
                "currency": args.currency,
                "profileId": args.owner,
                "restrictedToOwner": "true" if args.restricted else "false",
                "caption": args.caption,
                "relationName": args.relation_name,
                "expiringDate": args.expires,
                "multipleRedemptions": "false" if args.single_use else "true",
                "multipleCredits": "false" if args.single_load else "true",
            }
        ]
    else:
        with open(args.csv, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        if not rows:
            raise BadRequest(f"{args.csv} has no rows under its header")
    items = []
    for number, row in enumerate(rows, start=1):
        values = {key.strip(): value.strip() for key, value in row.items() if key and value}
        try:
            items.append(IssueCardItem.model_validate(values))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise BadRequest(f"row {number}: {problems}") from error
    return items


def giftcards_issue(args: argparse.Namespace, settings: Settings) -> int:
    """Print the new cards with their codes (shown this once), or write them to `--out`."""
    from connector.giftcards.cards import issued_as_json, order_from

    items = _issue_items(args)

    async def issue(db: Database) -> list[dict[str, object]]:
        merchant = await MerchantService(db).by_name(args.merchant)
        if merchant is None:
            raise NotFound(f"no merchant named {args.merchant!r}")
        service = _giftcards(db, settings)
        orders = [order_from(item) for item in items]
        issued = await service.issue_many(merchant, orders, _actor(args))
        return [issued_as_json(card, merchant.name) for card in issued]

    cards = _with_database(settings, issue)
    if args.out:
        import csv

        with open(args.out, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(cards[0]))
            writer.writeheader()
            writer.writerows(cards)
        print(f"issued {len(cards)} cards; codes written to {args.out}", file=sys.stderr)
    else:
        _print_json(cards)
    return 0


def giftcards_show(args: argparse.Namespace, settings: Settings) -> int:
    from connector.giftcards.cards import report_as_json

    async def show(db: Database) -> dict[str, object]:
        return report_as_json(await _giftcards(db, settings).report(args.card_id))

    _print_json(_with_database(settings, show))
    return 0


def giftcards_list(args: argparse.Namespace, settings: Settings) -> int:
    from connector.giftcards.cards import card_as_json

    async def listing(db: Database) -> list[dict[str, object]]:
        merchant = None
        if args.merchant:
            merchant = await MerchantService(db).by_name(args.merchant)
            if merchant is None:
                raise NotFound(f"no merchant named {args.merchant!r}")
        cards = await _giftcards(db, settings).list(merchant, args.status, 0, args.limit)
        return [card_as_json(card) for card in cards]

    _print_json(_with_database(settings, listing))
    return 0


def giftcards_block(args: argparse.Namespace, settings: Settings) -> int:
    from connector.giftcards.cards import card_as_json

    async def block(db: Database) -> dict[str, object]:
        card = await _giftcards(db, settings).set_blocked(
            args.card_id, not args.unblock, _actor(args), args.reason
        )
        return card_as_json(card)

    _print_json(_with_database(settings, block))
    return 0


def giftcards_credit(args: argparse.Namespace, settings: Settings) -> int:
    from decimal import Decimal, InvalidOperation

    try:
        amount = Decimal(args.amount)
    except InvalidOperation as error:
        raise BadRequest(f"not an amount: {args.amount!r}") from error

    async def credit(db: Database) -> dict[str, object]:
        transaction = await _giftcards(db, settings).credit(
            args.card_id, amount, args.request_id, _actor(args), args.reason
        )
        return {"transactionId": transaction.transaction_id, "requestId": transaction.request_id}

    _print_json(_with_database(settings, credit))
    return 0


def giftcards_expire_holds(args: argparse.Namespace, settings: Settings) -> int:
    """Release the holds past `CONNECTOR_GIFTCARD_HOLD_SECONDS` now (serve and worker do it
    every `CONNECTOR_GIFTCARD_EXPIRY_POLL_SECONDS`)."""
    from connector.giftcards.ledger import GiftCardLedger
    from connector.security import BlindIndex

    async def expire(db: Database) -> int:
        blind_index = BlindIndex.from_secret(settings.blind_index_secret())
        return await GiftCardLedger(db, settings, blind_index).release_expired_holds(limit=10_000)

    print(f"released {_with_database(settings, expire)} expired holds")
    return 0


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="connector", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="run the HTTP service")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.add_argument("--workers", type=int, default=1)
    serve_parser.set_defaults(handler=serve)

    migrate_parser = commands.add_parser("migrate", help="apply database migrations")
    migrate_parser.add_argument("--revision", default="head")
    migrate_parser.set_defaults(handler=migrate)

    merchants = commands.add_parser("merchants", help="merchants and their credentials")
    merchant_commands = merchants.add_subparsers(dest="merchant_command", required=True)
    add = merchant_commands.add_parser("add", help="create a merchant, print its credentials")
    add.add_argument("name")
    add.add_argument("--app-key")
    add.add_argument("--app-token")
    add.set_defaults(handler=merchants_add)
    merchant_commands.add_parser("list", help="list merchants").set_defaults(handler=merchants_list)
    rotate = merchant_commands.add_parser("rotate-token", help="issue a new app token")
    rotate.add_argument("name")
    rotate.set_defaults(handler=merchants_rotate)
    demo = merchant_commands.add_parser("demo", help="create or refresh the demo merchant")
    demo.add_argument("--name", default="demo")
    demo.set_defaults(handler=merchants_demo)

    giftcards = commands.add_parser("giftcards", help="issue, load, block and inspect gift cards")
    card_commands = giftcards.add_subparsers(dest="giftcard_command", required=True)
    issue = card_commands.add_parser(
        "issue", help="issue cards (one from the flags, or one per CSV row); prints their codes"
    )
    issue.add_argument("--merchant", required=True, help="the merchant (see `merchants list`)")
    issue.add_argument("--amount", default="0", help="initial balance, e.g. 50.00")
    issue.add_argument("--currency", help="ISO 4217 (default CONNECTOR_GIFTCARD_DEFAULT_CURRENCY)")
    issue.add_argument("--owner", help="profileId: email, document or user id of the owner")
    issue.add_argument("--restricted", action="store_true", help="only the owner may use it")
    issue.add_argument("--caption")
    issue.add_argument("--relation-name")
    issue.add_argument("--expires", help="ISO 8601 date or time, e.g. 2027-12-31T23:59:59Z")
    issue.add_argument("--single-use", action="store_true", help="one purchase only")
    issue.add_argument("--single-load", action="store_true", help="never reloaded")
    issue.add_argument("--csv", help="issue one card per row (columns: see the README)")
    issue.add_argument("--out", help="write the cards and their codes to this CSV file")
    issue.add_argument("--actor", help="who is issuing (default cli:$USER)")
    issue.set_defaults(handler=giftcards_issue)
    show = card_commands.add_parser("show", help="a card, its transactions and its ledger")
    show.add_argument("card_id")
    show.set_defaults(handler=giftcards_show)
    listing_cards = card_commands.add_parser("list", help="list cards")
    listing_cards.add_argument("--merchant")
    listing_cards.add_argument("--status", choices=["active", "blocked"])
    listing_cards.add_argument("--limit", type=int, default=100)
    listing_cards.set_defaults(handler=giftcards_list)
    block = card_commands.add_parser("block", help="block a card (or --unblock it)")
    block.add_argument("card_id")
    block.add_argument("--reason", required=True)
    block.add_argument("--unblock", action="store_true")
    block.add_argument("--actor")
    block.set_defaults(handler=giftcards_block)
    credit = card_commands.add_parser("credit", help="add money to a card")
    credit.add_argument("card_id")
    credit.add_argument("amount")
    credit.add_argument("--reason", required=True)
    credit.add_argument("--request-id", help="makes a retried credit safe")
    credit.add_argument("--actor")
    credit.set_defaults(handler=giftcards_credit)
    card_commands.add_parser(
        "expire-holds", help="release holds not settled in time, now"
    ).set_defaults(handler=giftcards_expire_holds)

    antifraud_cli.register(commands)

    worker_parser = commands.add_parser(
        "worker", help="deliver callbacks and reconcile pending payments (no HTTP)"
    )
    worker_parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve GET /metrics on this port"
    )
    worker_parser.add_argument("--metrics-host", default="127.0.0.1")
    worker_parser.set_defaults(handler=worker)

    outbox = commands.add_parser("outbox", help="callbacks waiting, delivered or dead")
    outbox_commands = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = outbox_commands.add_parser("list", help="list callbacks (newest last)")
    listing.add_argument("--status", choices=["pending", "delivered", "dead"])
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=outbox_list)
    again = outbox_commands.add_parser("retry", help="queue dead letters again")
    again.add_argument("ids", nargs="*")
    again.add_argument("--all", action="store_true", help="every dead letter")
    again.set_defaults(handler=outbox_retry)

    callbacks = commands.add_parser("callbacks", help="tools for callbacks")
    callback_commands = callbacks.add_subparsers(dest="callback_command", required=True)
    listen = callback_commands.add_parser("listen", help="print the callbacks sent to it")
    listen.add_argument("--host", default="127.0.0.1")
    listen.add_argument("--port", type=int, default=9000)
    listen.set_defaults(handler=callbacks_listen)

    keys = commands.add_parser("keys", help="encryption keys for personal data")
    key_commands = keys.add_subparsers(dest="key_command", required=True)
    key_commands.add_parser("generate", help="print a new key").set_defaults(handler=keys_generate)
    key_commands.add_parser(
        "rotate", help="re-encrypt stored data under the first configured key"
    ).set_defaults(handler=keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return int(args.handler(args, settings))
    except ConnectorError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
