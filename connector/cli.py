"""`connector serve | migrate | worker | merchants ... | outbox ... | keys ...`"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from connector.db.engine import Database
from connector.errors import ConnectorError
from connector.merchants import IssuedCredentials, MerchantService
from connector.settings import Settings

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
    import uvicorn

    if settings.is_sqlite and args.workers > 1:
        print("SQLite has one writer: use PostgreSQL for more than one worker", file=sys.stderr)
        return 2
    uvicorn.run(
        "connector.app:create_app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=20,
    )
    return 0


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
    """Deliver callbacks and reconcile pending payments, without serving HTTP."""
    import signal

    from connector.app import background_workers, build_services, check_schema

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

    asyncio.run(run())
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

    commands.add_parser(
        "worker", help="deliver callbacks and reconcile pending payments (no HTTP)"
    ).set_defaults(handler=worker)

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
