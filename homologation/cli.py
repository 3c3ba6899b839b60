"""`homologation run`: VTEX's Test Suite scenarios and Schemathesis against any deployment;
`homologation local`: the same against the service started here on a temporary database.

Exits 0 when every scenario passed, 1 when one failed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from homologation import render
from homologation.client import Target
from homologation.report import Report
from homologation.runner import SUITES, Fuzzing, RunOptions, exit_code, run
from homologation.scenarios.base import Limits

PHASES = ("examples", "coverage", "fuzzing", "stateful")


def suites(value: str) -> tuple[str, ...]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    if names == ["all"]:
        return SUITES
    unknown = sorted(set(names) - set(SUITES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(SUITES)} or all")
    return tuple(name for name in SUITES if name in names)


def phases(value: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = sorted(set(names) - set(PHASES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown phase {unknown}; choose from {', '.join(PHASES)}"
        )
    return names


def positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return number


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        type=suites,
        default=SUITES,
        help="payments, antifraud, giftcards or all (default)",
    )
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    parser.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    parser.add_argument(
        "--callback-listen",
        default="127.0.0.1:0",
        help="HOST:PORT where callbacks and hooks are received (default: a free loopback port)",
    )
    parser.add_argument(
        "--callback-public-url",
        help="the receiver's address as the deployment must call it (a remote deployment)",
    )
    parser.add_argument(
        "--callback-app-key", help="the X-VTEX-API-AppKey callbacks must carry (default: any)"
    )
    parser.add_argument(
        "--phases",
        type=phases,
        default=PHASES,
        help="Schemathesis phases, comma-separated (default: all four; empty: scenarios only)",
    )
    parser.add_argument("--no-fuzz", action="store_true", help="scenarios only, no Schemathesis")
    parser.add_argument(
        "--max-examples", type=int, default=25, help="Schemathesis examples per operation"
    )
    parser.add_argument("--seed", type=int, help="Schemathesis seed (default: fixed, reproducible)")
    parser.add_argument("--max-response-time", type=positive, default=5.0, help="seconds (VTEX: 5)")
    parser.add_argument(
        "--callback-timeout", type=positive, default=15.0, help="seconds (VTEX: 15)"
    )
    parser.add_argument("--hook-timeout", type=positive, default=10.0, help="seconds (VTEX: 10)")
    parser.add_argument("-k", "--select", help="only scenarios whose name contains this")
    parser.add_argument(
        "--parallel",
        type=int,
        choices=range(1, 17),
        default=4,
        metavar="1..16",
        help="scenarios run at once (default 4)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every exchange")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="homologation", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    remote = commands.add_parser("run", help="run the suite against a deployment")
    remote.add_argument("--url", required=True, help="the deployment's base URL")
    remote.add_argument("--app-key", default=os.environ.get("HOMOLOGATION_APP_KEY"))
    remote.add_argument(
        "--app-token",
        default=os.environ.get("HOMOLOGATION_APP_TOKEN"),
        help="the merchant's app token (or HOMOLOGATION_APP_TOKEN, kept out of shell history)",
    )
    remote.add_argument("--admin-token", default=os.environ.get("HOMOLOGATION_ADMIN_TOKEN"))
    for protocol in ("payments", "antifraud", "giftcards"):
        remote.add_argument(
            f"--{protocol}-url", help=f"the {protocol} protocol's URL, if not under --url"
        )
    _common(remote)
    local = commands.add_parser(
        "local", help="start the service on a temporary database and run the suite against it"
    )
    local.add_argument("--database-url", help="default: a new SQLite file")
    local.add_argument("--service-log", type=Path, help="append the service's output here")
    _common(local)
    return parser


def options_from(args: argparse.Namespace, target: Target, admin_token: str | None) -> RunOptions:
    fuzzing = None
    if not args.no_fuzz and args.phases:
        fuzzing = Fuzzing(
            phases=args.phases,
            max_examples=args.max_examples,
            seed=args.seed,
            admin_token=admin_token,
        )
    return RunOptions(
        target=target,
        suites=args.suite,
        callback_listen=args.callback_listen,
        callback_public_url=args.callback_public_url,
        callback_app_key=args.callback_app_key,
        limits=Limits(args.max_response_time, args.callback_timeout, args.hook_timeout),
        fuzzing=fuzzing,
        select=args.select,
        parallel=args.parallel,
    )


def publish(report: Report, args: argparse.Namespace) -> int:
    render.console(report, sys.stdout, verbose=args.verbose)
    for path, text in ((args.junit, render.junit), (args.html, render.html)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(report), encoding="utf-8")
            print(f"wrote {path}")
    return exit_code(report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        if not args.app_key or not args.app_token:
            parser.error("--app-key and --app-token (or HOMOLOGATION_APP_KEY/_TOKEN) are required")
        target = Target(
            args.url,
            args.app_key,
            args.app_token,
            payments_url=args.payments_url,
            antifraud_url=args.antifraud_url,
            giftcards_url=args.giftcards_url,
        )
        return publish(run(options_from(args, target, args.admin_token)), args)
    from homologation.local import local_service

    with local_service(args.database_url, log_file=args.service_log) as service:
        print(f"the service runs at {service.url} on {service.database_url.split(':')[0]}")
        target = Target(service.url, service.app_key, service.app_token)
        options = options_from(args, target, service.admin_token)
        # Here the provider's key is known: check that callbacks and hooks carry exactly it.
        return publish(run(replace(options, callback_app_key=service.vtex_app_key)), args)


if __name__ == "__main__":
    sys.exit(main())
