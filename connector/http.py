"""What every protocol's routes share: reading credentials and bodies, the test-suite flag."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from connector.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized
from connector.security import same_secret

if TYPE_CHECKING:
    from connector.app import Services
    from connector.db.tables import Merchant

M = TypeVar("M", bound=BaseModel)

# Header names arrive in any case; Starlette's lookup is case-insensitive already.
_CREDENTIAL_HEADERS = (
    ("x-vtex-api-appkey", "x-vtex-api-apptoken"),
    ("x-provider-api-appkey", "x-provider-api-apptoken"),
)


Endpoint = Callable[[Request], Awaitable[Response]]


def one_route_per_path(routes: list[Route]) -> list[BaseRoute]:
    """The routes merged by path, each dispatching on the method, in their first order.

    Starlette answers a method a path does not serve with the first route whose path matches,
    so a path split over several routes answered `405` with an `Allow` header naming only one
    route's methods (found by the homologation suite's Schemathesis run)."""
    handlers: dict[str, dict[str, Endpoint]] = {}
    for route in routes:
        for method in route.methods or ():
            handlers.setdefault(route.path, {})[method] = route.endpoint
    merged: list[BaseRoute] = []
    for path, by_method in handlers.items():

        async def dispatch(
            request: Request, by_method: dict[str, Endpoint] = by_method
        ) -> Response:
            return await by_method[request.method](request)

        merged.append(Route(path, dispatch, methods=list(by_method)))
    return merged


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def is_test_suite(request: Request) -> bool:
    return request.headers.get("x-vtex-api-is-testsuite", "").strip().lower() == "true"


async def authenticate(request: Request) -> Merchant:
    """The merchant whose credentials the request carries, or 401 (missing or wrong alike)."""
    app_key = app_token = ""
    for key_header, token_header in _CREDENTIAL_HEADERS:
        if request.headers.get(key_header) or request.headers.get(token_header):
            app_key = request.headers.get(key_header, "")
            app_token = request.headers.get(token_header, "")
            break
    found = services(request)
    if not app_key and not app_token:
        # VTEX's Test Suite sends empty credentials unless told otherwise.
        anonymous = found.settings.test_suite_merchant
        if anonymous and found.settings.test_suite_enabled and is_test_suite(request):
            merchant = await found.merchants.by_name(anonymous)
            if merchant is not None:
                return merchant
        raise Unauthorized(
            "missing X-VTEX-API-AppKey/X-VTEX-API-AppToken headers", code="missing-credentials"
        )
    return await found.merchants.authenticate(app_key, app_token)


async def authenticate_operator(request: Request) -> str:
    """The operator calling the admin API (`Authorization: Bearer <CONNECTOR_ADMIN_TOKEN>`), named
    by `X-Operator` for the ledger's notes; 401 when the token is missing or wrong, or when no
    token is configured (the admin API is then off)."""
    expected = services(request).settings.admin_token
    if expected is None:
        raise Unauthorized("the admin API is disabled: set CONNECTOR_ADMIN_TOKEN",
                           code="admin-api-disabled")  # fmt: skip
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not same_secret(
        presented.strip(), expected.get_secret_value()
    ):
        raise Unauthorized("missing or wrong admin bearer token", code="invalid-admin-token")
    operator = request.headers.get("x-operator", "").strip()
    return operator[:100] if operator else "admin-api"


async def read_model(request: Request, model: type[M]) -> M:
    """Parse a JSON body into `model`, or raise BadRequest saying what is wrong."""
    limit = services(request).settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    if b"\\u0000" in body:
        # Nothing we store may contain NUL (PostgreSQL text cannot): refuse it up front.
        raise BadRequest("request body contains a NUL character", code="invalid-request")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"request body is not valid JSON: {error}", code="invalid-json") from error
    except RecursionError as error:  # `[[[[...` thousands deep: the parser's stack runs out
        raise BadRequest("request body is nested too deeply", code="invalid-json") from error
    if not isinstance(document, dict):
        raise BadRequest("request body must be a JSON object", code="invalid-json")
    if _depth_exceeds(document, MAX_JSON_DEPTH):
        raise BadRequest(f"request body is nested deeper than {MAX_JSON_DEPTH} levels",
                         code="invalid-json")  # fmt: skip
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise BadRequest(_describe(error), code="invalid-request") from error


# VTEX's deepest body (an anti-fraud order) is 6 levels. Kept fields are copied, encrypted and
# serialised later; a body thousands of levels deep would fail there, as a 500.
MAX_JSON_DEPTH = 32


def _depth_exceeds(document: object, limit: int) -> bool:
    """Iterative, so that the check itself cannot run out of stack."""
    pending: list[tuple[object, int]] = [(document, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            pending.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            pending.extend((child, depth + 1) for child in node)
    return False


def path_id(request: Request, name: str) -> str:
    """A path parameter we look up in the database: bounded, and free of NUL characters."""
    value: str = request.path_params[name]
    if not value or len(value) > 200 or "\x00" in value:
        raise BadRequest(f"{name} must be 1 to 200 characters without NUL", code="invalid-path")
    return value


async def merchant_named(request: Request, name: str) -> Merchant:
    """An operator names a merchant (path or query): 400 if the name cannot be one, 404 if no
    merchant has it."""
    if not name or len(name) > 100 or "\x00" in name:
        raise BadRequest("a merchant name is 1 to 100 characters without NUL",
                         code="invalid-merchant")  # fmt: skip
    merchant = await services(request).merchants.by_name(name)
    if merchant is None:
        raise NotFound(f"no merchant named {name!r}", code="merchant-not-found")
    return merchant


def int_query(request: Request, name: str, default: int, smallest: int, largest: int) -> int:
    """A query parameter in ASCII digits (`str.isdigit` also accepts `²`, which `int` refuses)
    within bounds, or 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 10) or not (
        smallest <= int(raw) <= largest
    ):
        raise BadRequest(f"{name} must be an integer from {smallest} to {largest}",
                         code="invalid-query")  # fmt: skip
    return int(raw)


def _describe(error: ValidationError) -> str:
    """Field paths and reasons, never the offending values (they may be card data)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:10]:
        where = ".".join(str(part) for part in item["loc"]) or "body"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)
