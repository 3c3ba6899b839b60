"""`connector reviews ...` and `connector rules ...`: the review queue and merchants' rule files,
for operators at a shell. The admin API (`connector.antifraud.admin`) offers the same."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from connector.antifraud.admin import review_as_json, rules_as_json
from connector.antifraud.rules import InvalidRules, parse_rules
from connector.antifraud.rulesets import default_rules
from connector.antifraud.service import AntifraudService, build_antifraud
from connector.db.engine import Database
from connector.db.tables import Merchant
from connector.errors import BadRequest, NotFound
from connector.merchants import MerchantService
from connector.security import FieldCipher
from connector.settings import Settings

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[AntifraudService, Database], Awaitable[T]]) -> T:
    async def run() -> T:
        database = Database(settings.database_url)
        try:
            service = build_antifraud(database, settings, FieldCipher(settings.encryption_keys))
            return await work(service, database)
        finally:
            await database.dispose()

    return asyncio.run(run())


async def _merchant(database: Database, name: str) -> Merchant:
    merchant = await MerchantService(database).by_name(name)
    if merchant is None:
        raise NotFound(f"no merchant named {name!r}", code="merchant-not-found")
    return merchant


def _operator(args: argparse.Namespace) -> str:
    return str(args.operator or f"cli:{getpass.getuser()}")


def _print(value: object) -> None:
    print(json.dumps(value, indent=2))


def reviews_list(args: argparse.Namespace, settings: Settings) -> int:
    async def listing(service: AntifraudService, db: Database) -> list[dict[str, Any]]:
        merchant = await _merchant(db, args.merchant) if args.merchant else None
        names = {m.id: m.name for m in await MerchantService(db).list()}
        queue = await service.review_queue(merchant, args.limit)
        return [review_as_json(item, names.get(item.merchant_id)) for item in queue]

    _print(_run(settings, listing))
    return 0


def reviews_show(args: argparse.Namespace, settings: Settings) -> int:
    async def show(service: AntifraudService, db: Database) -> dict[str, Any]:
        analysis = await service.by_tid(args.tid)
        names = {m.id: m.name for m in await MerchantService(db).list()}
        return {
            **review_as_json(analysis, names.get(analysis.merchant_id)),
            "order": service.order_data(analysis),
        }

    _print(_run(settings, show))
    return 0


def _decide(decision: str) -> Callable[[argparse.Namespace, Settings], int]:
    def decide(args: argparse.Namespace, settings: Settings) -> int:
        async def work(service: AntifraudService, db: Database) -> dict[str, Any]:
            analysis = await service.decide_review(
                args.tid, decision, operator=_operator(args)[:100], reason=args.reason
            )
            return review_as_json(analysis)

        _print(_run(settings, work))
        return 0

    return decide


def reviews_expire(args: argparse.Namespace, settings: Settings) -> int:
    async def expire(service: AntifraudService, db: Database) -> int:
        total = 0
        while decided := await service.decide_due():
            total += decided
        return total

    print(f"decided {_run(settings, expire)} analyses past their deadline")
    return 0


def _read_rules(path: str) -> str:
    try:
        return sys.stdin.read() if path == "-" else Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise BadRequest(f"cannot read {path}: {error}", code="invalid-rules") from error


def rules_validate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rules = parse_rules(_read_rules(args.file))
    except InvalidRules as error:
        print(f"invalid: {error}", file=sys.stderr)
        return 1
    print(f"valid: {len(rules.rules)} rules, review from {rules.thresholds.review}, "
          f"deny from {rules.thresholds.deny}")  # fmt: skip
    return 0


def rules_load(args: argparse.Namespace, settings: Settings) -> int:
    source = _read_rules(args.file)

    async def load(service: AntifraudService, db: Database) -> dict[str, Any]:
        merchant = await _merchant(db, args.merchant)
        try:
            active = await service.rulebook.load(merchant.id, source, _operator(args))
        except InvalidRules as error:
            raise BadRequest(str(error), code="invalid-rules") from error
        shown = rules_as_json(merchant.name, active)
        shown.pop("source")
        return shown

    _print(_run(settings, load))
    return 0


def rules_show(args: argparse.Namespace, settings: Settings) -> int:
    if not args.merchant:
        print(default_rules(settings.antifraud_rules_file).source, end="")
        return 0

    async def show(service: AntifraudService, db: Database) -> str:
        merchant = await _merchant(db, args.merchant)
        active = await service.rulebook.for_merchant(merchant.id)
        origin = f"version {active.version}" if active.version else "the default"
        return f"# rules of {merchant.name}: {origin}\n{active.source}"

    print(_run(settings, show), end="")
    return 0


def register(commands: Any) -> None:
    """Add `reviews` and `rules` to the `connector` command."""
    reviews = commands.add_parser("reviews", help="the anti-fraud manual review queue")
    review_commands = reviews.add_subparsers(dest="review_command", required=True)
    listing = review_commands.add_parser("list", help="orders waiting for review, oldest first")
    listing.add_argument("--merchant")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=reviews_list)
    show = review_commands.add_parser("show", help="one analysis, with the order's data")
    show.add_argument("tid")
    show.set_defaults(handler=reviews_show)
    for verb, decision in (("approve", "approved"), ("deny", "denied")):
        decide = review_commands.add_parser(verb, help=f"{verb} an order; VTEX's hook is told")
        decide.add_argument("tid")
        decide.add_argument("--reason", required=True)
        decide.add_argument("--operator", help="who decides (default cli:$USER)")
        decide.set_defaults(handler=_decide(decision))
    review_commands.add_parser(
        "expire", help="decide the reviews past their deadline now"
    ).set_defaults(handler=reviews_expire)

    rules = commands.add_parser("rules", help="merchants' anti-fraud rule files")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True)
    validate = rule_commands.add_parser("validate", help="check a rule file (YAML or TOML)")
    validate.add_argument("file", help="path, or - for standard input")
    validate.set_defaults(handler=rules_validate)
    load = rule_commands.add_parser("load", help="make a rule file a merchant's rules")
    load.add_argument("file", help="path, or - for standard input")
    load.add_argument("--merchant", required=True)
    load.add_argument("--operator", help="who loads it (default cli:$USER)")
    load.set_defaults(handler=rules_load)
    show_rules = rule_commands.add_parser(
        "show", help="a merchant's rules (without --merchant: the default rules)"
    )
    show_rules.add_argument("--merchant")
    show_rules.set_defaults(handler=rules_show)
