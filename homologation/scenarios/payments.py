"""VTEX's Payment Provider Test Suite cases (payment reference, section 17), replayed as the Test
Suite sends them, plus what it does not test but the gateway relies on: idempotent replays and
cumulative limits."""

from __future__ import annotations

import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from homologation.client import PAYMENTS, TEST_SUITE_HEADER, Reply
from homologation.scenarios.base import SHIPPING_ADDRESS, Definition, Run

APPROVED_CARD = "4444333322221111"
DENIED_CARD = "4444333322221112"
ASYNC_APPROVED_CARD = "4222222222222224"
ASYNC_DENIED_CARD = "4222222222222225"
TEST_SUITE = {TEST_SUITE_HEADER: "true"}
IDS = ("paymentId", "tid", "nsu", "authorizationId")
SPLIT_MODES = {"disabled", "optin", "optout"}


def payment_body(
    run: Run,
    card_number: str | None = APPROVED_CARD,
    method: str = "Visa",
    value: float = 31.9,
    callback_query: str | None = None,
) -> tuple[dict[str, Any], str, str]:
    """A create-payment body as VTEX's gateway sends it (spec example), with a fresh paymentId
    and a callbackUrl on the suite's receiver; also the receiver token and that URL."""
    assert run.receiver is not None
    query = callback_query or f"an=homologation&X-VTEX-signature={secrets.token_hex(16)}"
    token, callback_url = run.receiver.new_url(query)
    order = str(int(time.time() * 1000))
    card: dict[str, Any] = {
        "holder": "John Doe" if card_number else None,
        "number": card_number,
        "csc": "987" if card_number else None,
        "expiration": {
            "month": "12" if card_number else None,
            "year": "2030" if card_number else None,
        },
        "document": "39295416023" if card_number else None,
    }
    body = {
        "reference": order,
        "orderId": f"v{order}hml-01",
        "shopperInteraction": "ecommerce",
        "transactionId": uuid.uuid4().hex.upper(),
        "paymentId": uuid.uuid4().hex.upper(),
        "paymentMethod": method,
        "paymentMethodCustomCode": None,
        "merchantName": "homologation",
        "card": card,
        "value": value,
        "referenceValue": value,
        "currency": "BRL",
        "installments": 1,
        "installmentsInterestRate": 0,
        "installmentsValue": value,
        "deviceFingerprint": "12ade389087fe",
        "ipAddress": "187.105.111.65",
        "miniCart": {
            "buyer": {
                "id": "c1245228-1c68-11e6-94ac-0afa86a846a5",
                "firstName": "John",
                "lastName": "Doe",
                "document": "01234567890",
                "documentType": "CPF",
                "email": "john.doe@example.com",
                "phone": "+5521987654321",
            },
            "shippingAddress": SHIPPING_ADDRESS,
            "items": [
                {"id": "132981", "name": "Some useful product", "price": value, "quantity": 1}
            ],
            "shippingValue": 0,
            "taxValue": 0,
        },
        "url": f"https://homologation.vtexcommercestable.com.br/admin/checkout/#/orders/{order}",
        "callbackUrl": callback_url,
        "returnUrl": f"https://homologation.vtexcommercestable.com.br/checkout/gatewayCallback/{order}",
        "inboundRequestsUrl": "https://homologation.vtexpayments.com.br/api/pub/inbound-request/:action",
    }
    return body, token, callback_url


def authorize(run: Run, body: dict[str, Any], expected: str) -> Reply:
    """POST /payments as the Test Suite does: never through a real acquirer."""
    reply = run.call(PAYMENTS, "POST", "/payments", json_body=body, headers=TEST_SUITE)
    run.status(reply, "POST /payments answers 200")
    run.equals(reply, "status", expected, required=True)
    run.equals(reply, "paymentId", body["paymentId"])
    return reply


def operate(run: Run, payment_id: str, kind: str, what: str, **fields: Any) -> Reply:
    """POST /payments/{id}/{kind} (settlements, refunds, cancellations) with a fresh requestId
    unless `fields` carry one."""
    body = {"paymentId": payment_id, "requestId": uuid.uuid4().hex, **fields}
    path = f"/payments/{payment_id}/{kind}"
    reply = run.call(PAYMENTS, "POST", path, json_body=body, headers=TEST_SUITE)
    run.status(reply, f"{what} answers 200")
    return reply


def settle(run: Run, payment_id: str, value: float, request_id: str | None = None) -> Reply:
    extra = {"requestId": request_id} if request_id else {}
    return operate(
        run, payment_id, "settlements", f"settlement of {value:.2f}", value=value, **extra
    )


def refund(run: Run, payment_id: str, value: float, request_id: str | None = None) -> Reply:
    extra = {"requestId": request_id} if request_id else {}
    return operate(run, payment_id, "refunds", f"refund of {value:.2f}", value=value, **extra)


def cancel(run: Run, payment_id: str, request_id: str | None = None) -> Reply:
    extra = {"requestId": request_id} if request_id else {}
    return operate(run, payment_id, "cancellations", "cancellation", **extra)


def accepted(run: Run, reply: Reply, id_field: str, request_id: str, value: float | None) -> None:
    """An operation that was carried out: its id, the echoed requestId and the value done."""
    run.present(reply, id_field)
    run.equals(reply, "requestId", request_id)
    if value is not None:
        run.equals(reply, "value", value)


def refused_or_within(run: Run, reply: Reply, id_field: str, limit: float, what: str) -> None:
    """A request beyond what is left: refused (null id) or, if accepted, never more than left."""
    done = reply.field(id_field)
    value = reply.field("value")
    ok = done is None or (isinstance(value, (int, float)) and value <= limit + 1e-9)
    run.expect(
        ok,
        f"{what} never exceeds {limit:.2f}",
        f"{id_field} {done!r} with value {value!r}, over the {limit:.2f} left",
        reply.exchange,
    )


# ----------------------------------------------------------------------------- the cases


def manifest(run: Run) -> None:
    reply = run.call(PAYMENTS, "GET", "/manifest", authenticated=False)
    body = run.status(reply, "GET /manifest answers 200 without credentials")
    methods = body.get("paymentMethods") if isinstance(body, dict) else None
    run.require(
        isinstance(methods, list) and len(methods) > 0,
        "the manifest lists payment methods",
        "paymentMethods is missing or empty: the Test Suite offers no method to test",
        reply.exchange,
    )
    assert isinstance(methods, list)
    wrong = [
        m
        for m in methods
        if not isinstance(m, dict) or not m.get("name") or m.get("allowsSplit") not in SPLIT_MODES
    ]
    run.expect(
        not wrong,
        "each method has a name and an allowsSplit of VTEX's",
        f"invalid: {wrong}",
        reply.exchange,
    )


def approved_settle_refund(run: Run) -> None:
    body, _, _ = payment_body(run, APPROVED_CARD, value=31.9)
    reply = authorize(run, body, "approved")
    run.present(reply, "authorizationId", "tid", "nsu")
    run.present(reply, "delayToAutoSettle", "delayToAutoSettleAfterAntifraud", "delayToCancel")
    request_id = uuid.uuid4().hex
    settled = settle(run, body["paymentId"], 31.9, request_id)
    accepted(run, settled, "settleId", request_id, 31.9)
    request_id = uuid.uuid4().hex
    refunded = refund(run, body["paymentId"], 31.9, request_id)
    accepted(run, refunded, "refundId", request_id, 31.9)


def denied(run: Run) -> None:
    body, _, _ = payment_body(run, DENIED_CARD)
    reply = authorize(run, body, "denied")
    run.expect(
        reply.field("authorizationId") is None,
        "a denied payment has no authorizationId",
        f"authorizationId is {reply.field('authorizationId')!r}",
        reply.exchange,
    )


def cancellation(run: Run) -> None:
    body, _, _ = payment_body(run, APPROVED_CARD)
    authorize(run, body, "approved")
    request_id = uuid.uuid4().hex
    cancelled = cancel(run, body["paymentId"], request_id)
    accepted(run, cancelled, "cancellationId", request_id, None)
    run.equals(cancelled, "paymentId", body["paymentId"])
    late = settle(run, body["paymentId"], body["value"])
    run.expect(
        late.field("settleId") is None,
        "a cancelled payment cannot be settled",
        f"settleId {late.field('settleId')!r} after the cancellation",
        late.exchange,
    )


def asynchronous(
    run: Run, card: str | None, method: str, final: str, extra: tuple[str, ...] = ()
) -> None:
    """`undefined` now, then the final answer POSTed to callbackUrl within VTEX's 15 s, and the
    same final answer (same ids) to a later POST of the same payment."""
    body, token, url = payment_body(run, card, method)
    sent_at = time.monotonic()
    reply = authorize(run, body, "undefined")
    run.present(reply, "tid", *extra)
    arrival = run.wait_for_callback(
        token, url, "the callback", run.limits.callback_timeout, sent_at
    )
    run.check_vtex_credentials(arrival, "the callback")
    notified = arrival.body if isinstance(arrival.body, dict) else {}
    run.expect(
        notified.get("status") == final,
        f"the callback says {final}",
        f"status is {notified.get('status')!r}",
    )
    run.expect(
        notified.get("paymentId") == body["paymentId"],
        "the callback names the payment",
        f"paymentId is {notified.get('paymentId')!r}",
    )
    run.expect(
        notified.get("tid") == reply.field("tid"),
        "the callback keeps the tid",
        f"tid {notified.get('tid')!r}, the authorization said {reply.field('tid')!r}",
    )
    # VTEX's gateway (and the IO retry path) POSTs the payment again: the final answer, same ids.
    again = authorize(run, body, final)
    changed = [f for f in IDS if again.field(f) != notified.get(f)]
    run.expect(
        not changed,
        "a later POST answers what the callback said",
        f"differs in {changed}",
        again.exchange,
    )
    run.only_once(token, "the callback")


def async_approved(run: Run) -> None:
    asynchronous(run, ASYNC_APPROVED_CARD, "Visa", "approved")


def async_denied(run: Run) -> None:
    asynchronous(run, ASYNC_DENIED_CARD, "Visa", "denied")


def redirect(run: Run) -> None:
    # The Test Suite's Redirect case: a card whose members are all null.
    asynchronous(run, None, "Visa", "approved", extra=("redirectUrl",))


def boleto(run: Run) -> None:
    asynchronous(run, None, "BankInvoice", "approved", extra=("paymentUrl",))


def idempotent_replay(run: Run) -> None:
    body, _, _ = payment_body(run, APPROVED_CARD, value=50.0)
    first = authorize(run, body, "approved")
    again = authorize(run, body, "approved")
    changed = [f for f in IDS if again.field(f) != first.field(f)]
    run.expect(
        not changed,
        "a replayed payment returns the same ids",
        f"new values for {changed}",
        first.exchange,
        again.exchange,
    )
    with ThreadPoolExecutor(max_workers=5) as pool:
        replies = list(
            pool.map(
                lambda _: run.call(
                    PAYMENTS, "POST", "/payments", json_body=body, headers=TEST_SUITE
                ),
                range(5),
            )
        )
    tids = {reply.field("tid") for reply in replies}
    run.expect(
        all(reply.status == 200 for reply in replies) and tids == {first.field("tid")},
        "5 concurrent replays answer the same tid",
        f"statuses {[reply.status for reply in replies]}, tids {sorted(map(str, tids))}",
        *(reply.exchange for reply in replies),
    )
    request_id = uuid.uuid4().hex
    settled = settle(run, body["paymentId"], 20.0, request_id)
    replayed = settle(run, body["paymentId"], 20.0, request_id)
    run.expect(
        settled.field("settleId") is not None
        and replayed.field("settleId") == settled.field("settleId"),
        "a replayed settlement returns the same settleId",
        f"{settled.field('settleId')!r} then {replayed.field('settleId')!r}",
        settled.exchange,
        replayed.exchange,
    )
    # Had the replay settled again, 40.00 of 50.00 would be settled and 30.00 would not fit.
    rest = settle(run, body["paymentId"], 30.0)
    run.expect(
        rest.field("settleId") is not None and rest.field("value") == 30.0,
        "the replay settled nothing more (the remaining 30.00 can still be settled)",
        f"settleId {rest.field('settleId')!r}, value {rest.field('value')!r}",
        rest.exchange,
    )


def cumulative_limits(run: Run) -> None:
    body, _, _ = payment_body(run, APPROVED_CARD, value=100.0)
    authorize(run, body, "approved")
    payment_id = body["paymentId"]
    refused_or_within(
        run,
        settle(run, payment_id, 150.0),
        "settleId",
        100.0,
        "a settlement above the authorization",
    )
    first = settle(run, payment_id, 60.0)
    run.expect(first.field("settleId") is not None, "60.00 of 100.00 settles", "", first.exchange)
    refused_or_within(
        run, settle(run, payment_id, 60.0), "settleId", 40.0, "a second settlement of 60.00"
    )
    refused_or_within(
        run, refund(run, payment_id, 70.0), "refundId", 60.0, "a refund above what was settled"
    )


def credentials(run: Run) -> None:
    body, _, _ = payment_body(run, APPROVED_CARD)
    missing = run.call(PAYMENTS, "POST", "/payments", json_body=body, authenticated=False)
    run.expect(
        missing.status == 401, "no credentials: 401", f"answered {missing.status}", missing.exchange
    )
    wrong = run.call(
        PAYMENTS,
        "POST",
        "/payments",
        json_body=body,
        authenticated=False,
        headers={
            "X-VTEX-API-AppKey": run.client.target.app_key,
            "X-VTEX-API-AppToken": "wrong-" + secrets.token_hex(8),
        },
    )
    run.expect(
        wrong.status == 401, "a wrong token: 401", f"answered {wrong.status}", wrong.exchange
    )
    run.expect(
        isinstance(missing.json(), dict) and isinstance(wrong.json(), dict),
        "the refusals have a JSON body",
        "",
        missing.exchange,
        wrong.exchange,
    )
    # Refused means nothing was done: the payment is new to the connector afterwards.
    reply = authorize(run, body, "approved")
    run.present(reply, "tid")


SCENARIOS = (
    Definition(PAYMENTS, "Manifest", "Test Suite: Check URL (GET /manifest)", manifest),
    Definition(
        PAYMENTS,
        "Approved, settled, refunded",
        "Test Suite: Approved / Authorize (card 4444333322221111)",
        approved_settle_refund,
    ),
    Definition(PAYMENTS, "Denied", "Test Suite: Denied (card 4444333322221112)", denied),
    Definition(
        PAYMENTS,
        "Cancellation",
        "Test Suite: Cancellation (card 4444333322221111)",
        cancellation,
    ),
    Definition(
        PAYMENTS,
        "Async Approved",
        "Test Suite: Async Approved (card 4222222222222224)",
        async_approved,
    ),
    Definition(
        PAYMENTS,
        "Async Denied",
        "Test Suite: Async Denied (card 4222222222222225)",
        async_denied,
    ),
    Definition(PAYMENTS, "Redirect", "Test Suite: Redirect (card fields null)", redirect),
    Definition(PAYMENTS, "Boleto", "Test Suite: Boleto flow (BankInvoice)", boleto),
    Definition(
        PAYMENTS,
        "Idempotent replay",
        "Gateway retries (reference 5.7, 19: pitfalls 11, 12)",
        idempotent_replay,
    ),
    Definition(
        PAYMENTS,
        "Cumulative limits",
        "Settle/refund limits (reference 8.3, 9.3)",
        cumulative_limits,
    ),
    Definition(PAYMENTS, "Credentials", "Reference 3.2: missing or wrong credentials", credentials),
)
