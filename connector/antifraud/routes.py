"""Anti-fraud Provider Protocol routes (VTEX's payment gateway calls them): parse, call the
service, serialise. Mounted at `/antifraud`, which is the Service URL to register at VTEX.

Credentials are `X-PROVIDER-API-AppKey`/`AppToken` (401 with a JSON body when missing or wrong),
except on `/manifest`, which is public, and on status reads of test-suite analyses: VTEX's suite
reads those without credentials (reference, A6), and nothing else is readable so.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.antifraud.service import response_of
from connector.db.tables import Merchant
from connector.errors import BadRequest, NotFound, Unauthorized
from connector.http import one_route_per_path, read_model, services
from protocol.antifraud import AnalysisRequest, CustomField, Manifest, StopResponse

NO_STORE = {"Cache-Control": "no-store"}


def _has_credentials(request: Request) -> bool:
    return bool(
        request.headers.get("x-provider-api-appkey", "").strip()
        or request.headers.get("x-provider-api-apptoken", "").strip()
    )


async def authenticate_provider(request: Request) -> Merchant:
    app_key = request.headers.get("x-provider-api-appkey", "").strip()
    app_token = request.headers.get("x-provider-api-apptoken", "").strip()
    if not app_key or not app_token:
        raise Unauthorized(
            "missing X-PROVIDER-API-AppKey/X-PROVIDER-API-AppToken", code="missing-credentials"
        )
    return await services(request).merchants.authenticate(app_key, app_token)


def is_test_suite(request: Request) -> bool:
    """VTEX's anti-fraud suite sends `X-PROVIDER-API-IS-TESTSUITE: true`."""
    if not services(request).settings.test_suite_enabled:
        return False
    return any(
        request.headers.get(name, "").strip().lower() == "true"
        for name in ("x-provider-api-is-testsuite", "x-vtex-api-is-testsuite")
    )


def transaction_id(request: Request) -> str:
    value: str = request.path_params["transaction_id"]
    if not value or len(value) > 255 or "\x00" in value:
        raise BadRequest("transactionId must be 1 to 255 characters without NUL",
                         code="invalid-path")  # fmt: skip
    return value


def _json(content: dict[str, object], status_code: int = 200) -> Response:
    return JSONResponse(content, status_code=status_code, headers=NO_STORE)


async def manifest(request: Request) -> Response:
    settings = services(request).settings
    document = Manifest(
        cardholder_document=settings.antifraud_cardholder_document,
        allow_antifraud_on_gift_card=settings.antifraud_allow_on_gift_card,
        custom_fields=[
            CustomField.model_validate(field.model_dump())
            for field in settings.antifraud_custom_fields
        ],  # fmt: skip
    )
    return _json(document.model_dump(mode="json", by_alias=True, exclude_none=True))


async def pre_analysis(request: Request) -> Response:
    merchant = await authenticate_provider(request)
    body = await read_model(request, AnalysisRequest)
    answer = await services(request).antifraud.pre_analyse(merchant, body)
    return _json(answer.model_dump(mode="json", by_alias=True))


async def send_transaction(request: Request) -> Response:
    merchant = await authenticate_provider(request)
    body = await read_model(request, AnalysisRequest)
    analysis = await services(request).antifraud.analyse(
        merchant, body, test_suite=is_test_suite(request)
    )
    return _json(response_of(analysis, as_post=True).model_dump(mode="json", by_alias=True))


async def get_transaction(request: Request) -> Response:
    wanted = transaction_id(request)
    found = services(request)
    if _has_credentials(request):
        merchant: Merchant | None = await authenticate_provider(request)
    elif found.settings.test_suite_enabled:
        merchant = None  # only a test-suite analysis can be read so
    else:
        raise Unauthorized(
            "missing X-PROVIDER-API-AppKey/X-PROVIDER-API-AppToken", code="missing-credentials"
        )
    try:
        analysis = await found.antifraud.status(merchant, wanted)
    except NotFound:
        if merchant is None:  # says nothing about real analyses to an anonymous caller
            raise Unauthorized("missing X-PROVIDER-API-AppKey/X-PROVIDER-API-AppToken",
                               code="missing-credentials") from None  # fmt: skip
        raise
    return _json(response_of(analysis).model_dump(mode="json", by_alias=True))


async def update_transaction(request: Request) -> Response:
    merchant = await authenticate_provider(request)
    body = await read_model(request, AnalysisRequest)
    analysis = await services(request).antifraud.update(
        merchant, transaction_id(request), body, test_suite=is_test_suite(request)
    )
    return _json(response_of(analysis).model_dump(mode="json", by_alias=True))


async def stop_transaction(request: Request) -> Response:
    merchant = await authenticate_provider(request)
    wanted = transaction_id(request)
    analysis = await services(request).antifraud.stop(merchant, wanted)
    if analysis is None:  # nothing to stop; VTEX needs no error for that
        answer = StopResponse(id=wanted, tid=None, status="undefined", stopped=False)
    else:
        answer = StopResponse(
            id=analysis.transaction_id,
            tid=analysis.tid,
            status=analysis.status,
            stopped=analysis.stopped_at is not None,
        )
    return _json(answer.model_dump(mode="json"))


_TRANSACTION = "/transactions/{transaction_id}"

routes: list[BaseRoute] = one_route_per_path(
    [
        Route("/manifest", manifest, methods=["GET"]),
        Route("/pre-analysis", pre_analysis, methods=["POST"]),
        Route("/transactions", send_transaction, methods=["POST"]),
        Route(_TRANSACTION, get_transaction, methods=["GET"]),
        Route(_TRANSACTION, update_transaction, methods=["PUT"]),
        Route(_TRANSACTION, stop_transaction, methods=["DELETE"]),
    ]
)
