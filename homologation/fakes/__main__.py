"""Serves one fake until Ctrl-C, for demos and manual QA:

python -m homologation.fakes acquirer --port 8701 --api-key K
python -m homologation.fakes secure-proxy --port 8702 --allow http://127.0.0.1:8701/
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from homologation.fakes import acquirer, secure_proxy
from homologation.fakes.server import serve


async def serve_acquirer(options: argparse.Namespace) -> None:
    fake = acquirer.FakeAcquirer(
        api_key=options.api_key,
        public_url="",  # known once the port is bound, below
        dedupe=options.dedupe,
        async_decision_seconds=options.async_decision_seconds,
    )
    async with serve(acquirer.create_app(fake), port=options.port) as url:
        fake.public_url = url
        print(f"fake acquirer serving {url} (faults: POST {url}/_control/faults)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            fake.release()


async def serve_secure_proxy(options: argparse.Namespace) -> None:
    proxy = secure_proxy.FakeSecureProxy(
        allowed_prefixes=options.allow, timeout_seconds=options.timeout
    )
    try:
        async with serve(secure_proxy.create_app(proxy), port=options.port) as url:
            print(f"fake secure proxy serving {url}/proxy (tokens: POST {url}/tokens)", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                proxy.release()
    finally:
        await proxy.aclose()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m homologation.fakes", description=__doc__)
    fakes = root.add_subparsers(dest="fake", required=True)

    core = fakes.add_parser("acquirer", help="a provider's core speaking the acquirer API")
    core.add_argument("--port", type=int, default=8701, help="0: any free port")
    core.add_argument("--api-key", required=True, help="the Api-Key every request must carry")
    core.add_argument(
        "--dedupe",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="treat a repeated reference as a replay (--no-dedupe: act again)",
    )
    core.add_argument(
        "--async-decision-seconds",
        type=float,
        default=5.0,
        help="how long a pending authorization waits for its decision",
    )
    core.set_defaults(run=serve_acquirer)

    proxy = fakes.add_parser("secure-proxy", help="VTEX's Secure Proxy, with a token vault")
    proxy.add_argument("--port", type=int, default=8702, help="0: any free port")
    proxy.add_argument(
        "--allow",
        action="append",
        required=True,
        metavar="URL_PREFIX",
        help="a forward URL prefix to allow (repeatable)",
    )
    proxy.add_argument(
        "--timeout", type=float, default=15.0, help="seconds the destination has to answer"
    )
    proxy.set_defaults(run=serve_secure_proxy)
    return root


def main(argv: list[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        asyncio.run(options.run(options))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
