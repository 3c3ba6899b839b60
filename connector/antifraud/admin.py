"""The operators' anti-fraud routes, mounted under `/admin` (bearer token, `CONNECTOR_ADMIN_TOKEN`):
the review queue and merchants' rule files. The same operations as `connector reviews ...` and
`connector rules ...`.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from connector.antifraud.rules import InvalidRules
from connector.antifraud.rulesets import ActiveRules
from connector.antifraud.service import money, response_of
from connector.db.tables import AntifraudAnalysis
from connector.errors import BadRequest, PayloadTooLarge
from connector.http import (
    authenticate_operator,
    int_query,
    merchant_named,
    one_route_per_path,
    path_id,
    read_model,
    services,
)
from protocol.admin import ReviewDecisionRequest


def review_as_json(analysis: AntifraudAnalysis, merchant: str | None = None) -> dict[str, Any]:
    """An analysis as operators see it (no personal data; `order` is added on the detail)."""
    answer = response_of(analysis).model_dump(mode="json", by_alias=True)
    answer.update(
        merchant=merchant,
        reference=analysis.reference,
        amount=money(analysis),
        testSuite=analysis.is_test_suite,
        rulesVersion=analysis.ruleset_version,
        deadline=analysis.deadline.isoformat() if analysis.deadline else None,
        onDeadline=analysis.default_decision if analysis.deadline else None,
        decidedBy=analysis.decided_by,
        decisionReason=analysis.decision_reason,
        decidedAt=analysis.decided_at.isoformat() if analysis.decided_at else None,
        stoppedAt=analysis.stopped_at.isoformat() if analysis.stopped_at else None,
        createdAt=analysis.created_at.isoformat(),
    )
    return answer


def rules_as_json(merchant: str, active: ActiveRules) -> dict[str, Any]:
    return {
        "merchant": merchant,
        "version": active.version,
        "loadedBy": active.loaded_by,
        "default": active.version is None,
        "thresholds": active.rules.thresholds.model_dump(),
        "review": active.rules.review.model_dump(),
        "rules": [rule.name for rule in active.rules.active()],
        "source": active.source,
    }


async def _names(request: Request) -> dict[Any, str]:
    return {m.id: m.name for m in await services(request).merchants.list()}


async def list_reviews(request: Request) -> Response:
    await authenticate_operator(request)
    name = request.query_params.get("merchant")
    merchant = await merchant_named(request, name) if name else None
    limit = int_query(request, "limit", 100, 1, 1000)
    queue = await services(request).antifraud.review_queue(merchant, limit)
    names = await _names(request)
    return JSONResponse([review_as_json(item, names.get(item.merchant_id)) for item in queue])


async def show_review(request: Request) -> Response:
    await authenticate_operator(request)
    found = services(request).antifraud
    analysis = await found.by_tid(path_id(request, "tid"))
    answer = review_as_json(analysis, (await _names(request)).get(analysis.merchant_id))
    answer["order"] = found.order_data(analysis)
    return JSONResponse(answer)


async def decide_review(request: Request) -> Response:
    operator = await authenticate_operator(request)
    body = await read_model(request, ReviewDecisionRequest)
    analysis = await services(request).antifraud.decide_review(
        path_id(request, "tid"), body.decision, operator=operator, reason=body.reason
    )
    return JSONResponse(review_as_json(analysis, (await _names(request)).get(analysis.merchant_id)))


async def show_rules(request: Request) -> Response:
    await authenticate_operator(request)
    merchant = await merchant_named(request, path_id(request, "merchant"))
    active = await services(request).antifraud.rulebook.for_merchant(merchant.id)
    return JSONResponse(rules_as_json(merchant.name, active))


async def load_rules(request: Request) -> Response:
    """The body is the rule file itself: YAML (or JSON) or TOML, by content or Content-Type."""
    operator = await authenticate_operator(request)
    merchant = await merchant_named(request, path_id(request, "merchant"))
    limit = services(request).settings.max_body_bytes
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    try:
        source = body.decode()
    except UnicodeDecodeError as error:
        raise BadRequest("the rule file must be UTF-8 text", code="invalid-rules") from error
    if "\x00" in source:
        raise BadRequest("the rule file contains a NUL character", code="invalid-rules")
    try:
        active = await services(request).antifraud.rulebook.load(merchant.id, source, operator)
    except InvalidRules as error:
        raise BadRequest(str(error), code="invalid-rules") from error
    return JSONResponse(rules_as_json(merchant.name, active))


routes: list[BaseRoute] = one_route_per_path(
    [
        Route("/antifraud/reviews", list_reviews, methods=["GET"]),
        Route("/antifraud/reviews/{tid}", show_review, methods=["GET"]),
        Route("/antifraud/reviews/{tid}/decision", decide_review, methods=["POST"]),
        Route("/antifraud/merchants/{merchant}/rules", show_rules, methods=["GET"]),
        Route("/antifraud/merchants/{merchant}/rules", load_rules, methods=["PUT"]),
    ]
)
