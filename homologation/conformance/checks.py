"""The checks only the protocols can state, registered with Schemathesis."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import httpx
import schemathesis
from schemathesis.core.failures import Failure, FailureGroup

from homologation.conformance.config import (
    CARD_METHODS,
    EXCHANGES_PER_FAILURE,
    PAYMENT_IDS,
    TEST_SUITE_CARDS,
    TEST_SUITE_HEADER,
    Case,
)
from homologation.conformance.state import (
    Payment,
    ProtocolFailure,
    RunState,
    _decimal,
    _header,
    _json,
    _operation_id,
    _state_of,
    exchange_of_httpx,
    exchange_of_response,
)


def _fail(case: Case, title: str, message: str) -> None:
    raise ProtocolFailure(operation=case.operation.label, title=title, message=message)


def settle_within_authorization(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """Settlements within the authorization, refunds within the settlements, no cancellation of
    a settled payment (nor settlement of a cancelled one), a repeated requestId answers alike."""
    state = _state_of(case)
    if state is None or state.group.name != "payments" or response.status_code != 200:
        return None
    body = _json(response.content)
    if not isinstance(body, dict):
        return None
    operation_id = _operation_id(case)
    if operation_id == "createPayment":
        _record_payment(state, case, body)
        return None
    kinds = {
        "settlePayment": "settleId",
        "refundPayment": "refundId",
        "cancelPayment": "cancellationId",
        "cancelPaymentAlias": "cancellationId",
    }
    id_field = kinds.get(operation_id)
    payment_id = (case.path_parameters or {}).get("paymentId")
    sent = case.body if isinstance(case.body, dict) else {}
    request_id = sent.get("requestId")
    if id_field is None or not isinstance(payment_id, str) or not isinstance(request_id, str):
        return None
    kind = "cancel" if id_field == "cancellationId" else operation_id
    answer = (body.get(id_field), body.get("value"))
    with state.lock:
        if payment_id not in state.payments:
            return None  # a payment this run never saw created: nothing is known of it
        payment = state.payments[payment_id]
        earlier = payment.answers.get((kind, request_id))
        if earlier is not None:
            if earlier != answer:
                _fail(
                    case,
                    "A repeated requestId answered differently",
                    f"requestId {request_id!r} of payment {payment_id} first answered "
                    f"{id_field}={earlier[0]!r}, value={earlier[1]!r}, now "
                    f"{id_field}={answer[0]!r}, value={answer[1]!r}: a repeated requestId "
                    "must replay the stored answer",
                )
            return None
        payment.answers[(kind, request_id)] = answer
        if answer[0] is None:
            return None  # refused: nothing happened
        value = _decimal(body.get("value")) or Decimal(0)
        if kind == "settlePayment":
            _check_settlement(case, payment, payment_id, request_id, value, sent)
        elif kind == "refundPayment":
            payment.refunded[request_id] = value
            refunded, settled = sum(payment.refunded.values()), sum(payment.settled.values())
            if payment.fresh and refunded > settled:
                _fail(
                    case,
                    "Refunded more than was settled",
                    f"payment {payment_id}: {refunded} refunded in {len(payment.refunded)} "
                    f"refund(s), only {settled} settled",
                )
        else:
            payment.cancelled.add(request_id)
            if payment.settled:
                _fail(
                    case,
                    "A settled payment was cancelled",
                    f"payment {payment_id} was settled ({sum(payment.settled.values())}), then "
                    f"cancellation {request_id!r} succeeded: a payment can only be cancelled "
                    "before it is settled",
                )
    return None


def _check_settlement(
    case: Case,
    payment: Payment,
    payment_id: str,
    request_id: str,
    value: Decimal,
    sent: Mapping[str, Any],
) -> None:
    payment.settled[request_id] = value
    found: list[Failure] = []

    def problem(title: str, message: str) -> None:
        found.append(ProtocolFailure(operation=case.operation.label, title=title, message=message))

    limit = payment.limit
    total = sum(payment.settled.values())
    if limit is not None and total > limit:
        what = "denied" if payment.status == "denied" else f"authorized for {limit}"
        problem(
            "Settled more than authorized",
            f"payment {payment_id} ({what}): {total} settled in {len(payment.settled)} "
            f"settlement(s) with distinct requestIds",
        )
    if payment.cancelled:
        problem(
            "A cancelled payment was settled",
            f"payment {payment_id} was cancelled, then settlement {request_id!r} settled {value}",
        )
    asked = _decimal(sent.get("value"))
    if asked is not None and value > asked:
        problem(
            "Settled more than asked",
            f"payment {payment_id}: settlement {request_id!r} asked {asked}, settled {value}",
        )
    if len(found) == 1:
        raise found[0]
    if found:
        raise FailureGroup(found)


def _record_payment(state: RunState, case: Case, body: Mapping[str, Any]) -> None:
    payment_id = body.get("paymentId")
    sent = case.body if isinstance(case.body, dict) else {}
    if not isinstance(payment_id, str) or sent.get("paymentId") != payment_id:
        return
    with state.lock:
        payment = state.payments[payment_id]
        value = _decimal(sent.get("value"))
        if value is not None:
            payment.values.add(value)
        max_value = _decimal(body.get("maxValue"))
        if max_value is not None:
            payment.max_value = max_value
        if isinstance(body.get("status"), str):
            payment.status = body["status"]


def idempotent_create_payment(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """A POST /payments repeated keeps paymentId, tid, nsu and authorizationId; the first 200
    of each paymentId is sent again once."""
    state = _state_of(case)
    if state is None or _operation_id(case) != "createPayment" or response.status_code != 200:
        return None
    body = _json(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("paymentId"), str):
        return None
    payment_id = body["paymentId"]
    with state.lock:
        payment = state.payments[payment_id]
        replay = not payment.replayed
        payment.replayed = True
        _compare_ids(case, payment, payment_id, body, "an earlier answer")
    if not replay:
        return None
    started = time.perf_counter()
    request = response.request
    headers = {
        name: value.decode("latin-1") if isinstance(value, bytes) else value
        for name, value in dict(request.headers).items()
        if name.lower() not in {"content-length", "host"}
    }
    content = request.body if isinstance(request.body, bytes | str) else None
    try:
        again = state.http.request(
            str(request.method), str(request.url), headers=headers, content=content
        )
    except httpx.HTTPError as error:
        _fail(case, "The replay got no answer", f"POST /payments sent again: {error}")
        return None
    exchange = exchange_of_httpx(again, time.perf_counter() - started)
    with state.lock:
        state.extra[case.id].append(exchange)
    replayed = _json(again.content)
    if again.status_code != 200 or not isinstance(replayed, dict):
        _fail(
            case,
            "A repeated POST /payments failed",
            f"the same request sent again answered {again.status_code}: {again.text[:500]}",
        )
        return None
    with state.lock:
        _compare_ids(case, payment, payment_id, replayed, "the same request sent again")
    return None


def _compare_ids(
    case: Case, payment: Payment, payment_id: str, body: Mapping[str, Any], what: str
) -> None:
    ids = {name: body.get(name) for name in PAYMENT_IDS}
    if payment.ids is None:
        payment.ids = ids
        return
    changed = [
        f"{name}: {payment.ids[name]!r} -> {ids[name]!r}"
        for name in PAYMENT_IDS
        # null until the authorization, then set: allowed; set, then changed or gone: not
        if payment.ids[name] is not None and ids[name] != payment.ids[name]
    ]
    if changed:
        _fail(
            case,
            "A repeated POST /payments changed the payment's ids",
            f"payment {payment_id}, compared with {what}: " + "; ".join(changed),
        )
    for name in PAYMENT_IDS:
        if payment.ids[name] is None:
            payment.ids[name] = ids[name]


def vtex_test_suite_cards(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """With X-VTEX-API-Is-TestSuite: true, VTEX's Test Suite cards get their statuses: a new
    payment's first answer the card's, a pending one then its final status, and never a status
    the card cannot have."""
    state = _state_of(case)
    if state is None or _operation_id(case) != "createPayment" or response.status_code != 200:
        return None
    sent = case.body if isinstance(case.body, dict) else {}
    body = _json(response.content)
    card = sent.get("card")
    number = card.get("number") if isinstance(card, dict) else None
    number = number if isinstance(number, str) else None
    test_suite = (_header(dict(response.request.headers), TEST_SUITE_HEADER) or "") == "true"
    method = sent.get("paymentMethod")
    method = method if isinstance(method, str) else None
    payment_id = sent.get("paymentId")
    if not isinstance(body, dict) or not isinstance(payment_id, str):
        return None
    status = body.get("status")
    with state.lock:
        payment = state.payments[payment_id]
        if payment.first is None:
            payment.first = (number, test_suite, method)
        elif payment.first != (number, test_suite, method):
            return None  # created with another card: the answer is that payment's
        first, pending = not payment.answered, payment.pending
        payment.answered = True
        payment.pending = payment.pending or status == "undefined"
        cancelled = bool(payment.cancelled)
        fresh = payment.fresh
    statuses = TEST_SUITE_CARDS.get(number or "")
    if not test_suite or statuses is None or method not in CARD_METHODS:
        return None
    initial, later, ever = statuses
    if fresh and first:
        expected, when = frozenset({initial}), "a new payment"
    elif pending and not cancelled:
        expected, when = later, "a payment this run saw pending"
    else:
        expected, when = ever, "a payment of this card, whatever happened to it before"
    if status not in expected:
        _fail(
            case,
            "A VTEX Test Suite card did not get its status",
            f"card {number} ({method}) with {TEST_SUITE_HEADER}: true answered {status!r} for "
            f"{when} (paymentId {payment_id}); VTEX's Test Suite expects "
            + " or ".join(sorted(expected)),
        )
    return None


def agrees_with_vtex_specification(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    """No unexpected difference with VTEX's specification (`homologation.vtex_specs`)."""
    state = _state_of(case)
    if state is None or state.group.protocol is None:
        return None
    method = str(response.request.method)
    path = state.vtex_path(str(response.request.url))
    body = _json(response.content)
    differences = state.specs.differences(
        state.group.protocol, method, path, response.status_code, body
    )
    template = state.specs.operation(state.group.protocol, method, path)
    if template is None:
        return None
    vtex_operation = f"{method} {template}"
    with state.lock:
        state.compared[(vtex_operation, str(response.status_code))] += 1
        unexpected = []
        for difference in differences:
            if difference.known is None:
                unexpected.append(difference.message)
                continue
            key = (vtex_operation, _shape(difference.message), difference.known)
            seen = state.known.setdefault(key, [0, difference.message])
            seen[0] += 1
        if unexpected:
            exchange = exchange_of_response(response)
            for message in unexpected:
                entries = state.unexpected[(vtex_operation, _shape(message))]
                if len(entries) < EXCHANGES_PER_FAILURE:
                    entries.append((message, exchange))
    if unexpected:
        _fail(
            case,
            "The answer differs from VTEX's specification",
            f"VTEX's {vtex_operation} ({response.status_code}):\n" + "\n".join(unexpected),
        )
    return None


def _shape(message: str) -> str:
    """A difference without the offending value, to group alike ones (a missing property's
    name stays)."""
    return re.sub(r"^([^:]*): .*? (is not of type|is not one of)", r"\1: … \2", message)


CUSTOM_CHECKS: tuple[Callable[..., bool | None], ...] = (
    settle_within_authorization,
    idempotent_create_payment,
    vtex_test_suite_cards,
    agrees_with_vtex_specification,
)


def _register_checks() -> None:
    """Register the custom checks (idempotent). They only act on this module's runs."""
    for check in CUSTOM_CHECKS:
        schemathesis.check(check)
