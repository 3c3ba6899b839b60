"""VTEX's anti-fraud provider tests (anti-fraud reference, A13): the transaction id's last
character picks the case; statuses are read as the Postman collection does, with only the
test-suite header."""

from __future__ import annotations

import time
import uuid
from typing import Any

from homologation.client import ANTIFRAUD, ANTIFRAUD_TEST_SUITE_HEADER, Reply
from homologation.scenarios.base import SHIPPING_ADDRESS, Definition, Run

TEST_SUITE = {ANTIFRAUD_TEST_SUITE_HEADER: "true"}
POLL_SECONDS = 2.0  # the collection's recommended delay between requests
RISK_STATUSES = {"approved", "denied", "undefined"}


def analysis_body(transaction_id: str, hook: str | None) -> dict[str, Any]:
    """The Postman collection's body, identical for every case but the id."""
    address = SHIPPING_ADDRESS
    return {
        "id": transaction_id,
        "reference": uuid.uuid4().hex,
        "value": 150.6,
        "ip": "192.168.0.1",
        "deviceFingerprint": "12ade389087fexd",
        "miniCart": {
            "buyer": {
                "id": None,
                "firstName": "John",
                "lastName": "Doe",
                "document": "01234567890",
                "documentType": "CPF",
                "email": "john.doe@example.com",
                "phone": "+5521987654321",
                "address": {
                    **address,
                    "street": "Brig. Faria Lima Avenue",
                    "number": "4440",
                    "neighborhood": "Itaim Bibi",
                    "postalCode": "04538132",
                    "city": "São Paulo",
                    "state": "SP",
                    "complement": "10th Floor",
                },
            },
            "shipping": {"value": 10.3, "estimatedDate": "2017-08-02T14:46:47", "address": address},
            "items": [
                {
                    "id": "132981",
                    "name": "Some useful product",
                    "price": 140.3,
                    "quantity": 1,
                    "deliveryType": "Normal",
                    "deliverySlaInMinutes": 4320,
                    "categoryId": "111",
                    "categoryName": "Electronics",
                    "discount": 0,
                }
            ],
            "taxValue": 0,
            "listRegistry": {"name": "My Wedding List", "deliveryToOwner": False},
        },
        "payments": [
            {
                "id": uuid.uuid4().hex.upper(),
                "method": "CreditCard",
                "name": "Visa",
                "value": 150.6,
                "installments": 3,
                "details": {
                    "bin": "486902",
                    "lastDigits": "8214",
                    "holder": "John Doe",
                    "address": address,
                },
            }
        ],
        "hook": hook,
    }


def test_id(last: str) -> str:
    """As the collection builds it: a GUID without hyphens, upper-cased, plus the case digit."""
    return uuid.uuid4().hex.upper() + last


def send(run: Run, transaction_id: str, hook: str | None) -> Reply:
    reply = run.call(
        ANTIFRAUD,
        "POST",
        "/transactions",
        json_body=analysis_body(transaction_id, hook),
        headers=TEST_SUITE,
    )
    run.status(reply, "POST /transactions answers 200 or 201", 200, 201)
    run.equals(reply, "status", "received")
    run.equals(reply, "id", transaction_id)
    run.present(reply, "tid")
    return reply


def read_status(run: Run, transaction_id: str, expected: str, when: str) -> Reply:
    # The collection sends no credentials on reads, only the test-suite header.
    reply = run.call(
        ANTIFRAUD, "GET", f"/transactions/{transaction_id}", headers=TEST_SUITE, authenticated=False
    )
    run.status(reply, f"GET /transactions/{{id}} {when} answers 200")
    run.equals(reply, "status", expected)
    return reply


def immediate(run: Run, last: str, final: str) -> None:
    transaction_id = test_id(last)
    send(run, transaction_id, None)
    read_status(run, transaction_id, final, "after the POST")
    read_status(run, transaction_id, final, "again")


def polled(run: Run, last: str, final: str) -> None:
    transaction_id = test_id(last)
    send(run, transaction_id, None)
    read_status(run, transaction_id, "undefined", "first")
    time.sleep(POLL_SECONDS)
    read_status(run, transaction_id, final, f"{POLL_SECONDS:.0f} s later")
    read_status(run, transaction_id, final, "again")


def hooked(run: Run, last: str, final: str) -> None:
    assert run.receiver is not None
    transaction_id = test_id(last)
    token, url = run.receiver.new_url(f"accountName=homologation&id={transaction_id}")
    sent_at = time.monotonic()
    posted = send(run, transaction_id, url)
    read_status(run, transaction_id, "undefined", "before the hook")
    arrival = run.wait_for_callback(token, url, "the hook", run.limits.hook_timeout, sent_at)
    run.check_vtex_credentials(arrival, "the hook")
    hook = arrival.body if isinstance(arrival.body, dict) else {}
    run.expect(
        hook.get("status") == final, f"the hook says {final}", f"status is {hook.get('status')!r}"
    )
    run.expect(
        hook.get("id") == transaction_id,
        "the hook names the transaction",
        f"id is {hook.get('id')!r}",
    )
    run.expect(
        hook.get("tid") == posted.field("tid"),
        "the hook keeps the tid",
        f"tid {hook.get('tid')!r}, the POST said {posted.field('tid')!r}",
    )
    read_status(run, transaction_id, final, "after the hook")
    run.only_once(token, "the hook")


def manifest(run: Run) -> None:
    reply = run.call(ANTIFRAUD, "GET", "/manifest", authenticated=False)
    run.status(reply, "GET /manifest answers 200 without credentials")
    run.expect(
        reply.field("cardholderDocument") in {"required", "optional", "unused"},
        "cardholderDocument is required, optional or unused",
        f"it is {reply.field('cardholderDocument')!r}",
        reply.exchange,
    )
    run.expect(
        isinstance(reply.field("customFields"), list), "customFields is a list", "", reply.exchange
    )


def replay(run: Run) -> None:
    transaction_id = test_id("1")
    first = send(run, transaction_id, None)
    again = send(run, transaction_id, None)
    run.expect(
        again.field("tid") == first.field("tid"),
        "a repeated POST answers the same tid",
        f"{first.field('tid')!r} then {again.field('tid')!r}",
        first.exchange,
        again.exchange,
    )


def credentials(run: Run) -> None:
    body = analysis_body(test_id("1"), None)
    refused = run.call(ANTIFRAUD, "POST", "/transactions", json_body=body, authenticated=False)
    run.expect(
        refused.status in (401, 403),
        "no credentials: 401",
        f"answered {refused.status}",
        refused.exchange,
    )
    unknown = run.call(ANTIFRAUD, "GET", f"/transactions/{body['id']}", headers=TEST_SUITE)
    run.expect(
        unknown.status == 404,
        "the refused analysis was not stored",
        f"GET answered {unknown.status}",
        unknown.exchange,
    )


def _case(last: str, name: str, kind: str, final: str) -> Definition:
    run = {"immediate": immediate, "polled": polled, "hooked": hooked}[kind]

    def scenario(context: Run) -> None:
        run(context, last, final)

    return Definition(
        ANTIFRAUD,
        f"{name} (id ending {last})",
        f"Anti-fraud tester: {name}",
        scenario,
    )


SCENARIOS = (
    Definition(ANTIFRAUD, "Manifest", "Anti-fraud reference A10: GET /manifest", manifest),
    _case("1", "Authorize", "immediate", "approved"),
    _case("2", "Denied", "immediate", "denied"),
    _case("3", "AsyncApproved", "polled", "approved"),
    _case("4", "AsyncDenied", "polled", "denied"),
    _case("5", "HookApproved", "hooked", "approved"),
    _case("6", "HookDenied", "hooked", "denied"),
    Definition(ANTIFRAUD, "Idempotent analysis", "Anti-fraud reference A5.4", replay),
    Definition(
        ANTIFRAUD, "Credentials", "Anti-fraud reference A2: missing credentials", credentials
    ),
)
