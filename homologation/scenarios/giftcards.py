"""The Gift Card Hub's flows (gift card reference, B1.1), in its order: search, get, debit, then
read the settlements or cancellations and POST only what is left; plus the Hub's credential
probes, idempotent repeats and the no-overspend rule."""

from __future__ import annotations

import uuid
from typing import Any

from homologation.client import GIFTCARDS, Reply
from homologation.scenarios.base import Definition, Run

HUB_MEDIA_TYPE = "application/vnd.vtex.giftcards.v1+json"
HUB = {"Accept": HUB_MEDIA_TYPE, "Content-Type": HUB_MEDIA_TYPE}


class Card:
    def __init__(self, body: dict[str, Any], owner: str) -> None:
        self.id = str(body["id"])
        self.code = str(body.get("redemptionCode") or "")
        self.token = body.get("redemptionToken")
        self.owner = owner
        self.path = f"/giftcards/{self.id}"


def hub(run: Run, method: str, path: str, body: Any = None, **kwargs: Any) -> Reply:
    return run.call(
        GIFTCARDS,
        method,
        path,
        json_body=body,
        headers={**HUB, **kwargs.pop("headers", {})},
        **kwargs,
    )


def new_card(run: Run, amount: float) -> Card:
    """A card as the Hub creates one (zero balance, owned), loaded by a Credit."""
    owner = f"homologation-{uuid.uuid4().hex[:12]}@example.com"
    created = hub(
        run,
        "POST",
        "/giftcards",
        {"relationName": "homologation", "caption": "Homologation", "profileId": owner},
    )
    body = run.status(created, "POST /giftcards creates a card")
    run.require(
        isinstance(body, dict) and bool(body.get("id")),
        "the new card has an id",
        "",
        created.exchange,
    )
    card = Card(body, owner)
    credit = {
        "operation": "Credit",
        "value": amount,
        "description": "homologation",
        "requestId": uuid.uuid4().hex,
    }
    loaded = hub(run, "POST", f"{card.path}/transactions", credit)
    run.status(loaded, f"a Credit of {amount:.2f} loads it")
    return card


def balance(run: Run, card: Card, expected: float, when: str) -> None:
    reply = hub(run, "GET", card.path, params={"ts": "639091131481342036"})
    run.status(reply, f"GET the card {when}")
    actual = reply.field("balance")
    run.expect(
        isinstance(actual, (int, float)) and abs(actual - expected) < 0.005,
        f"balance {when} is {expected:.2f}",
        f"balance is {actual!r}",
        reply.exchange,
    )


def debit(run: Run, card: Card, value: float, request_id: str | None = None) -> Reply:
    body = {
        "operation": "Debit",
        "value": value,
        "description": "GiftCardHub",
        "redemptionToken": card.token,
        "redemptionCode": card.code,
        "requestId": request_id or uuid.uuid4().hex.upper(),
        "orderInfo": {
            "orderId": "v5006128hml",
            "sequence": 5006128,
            "clientProfile": {"email": card.owner},
        },
    }
    return hub(run, "POST", f"{card.path}/transactions", body)


def total(run: Run, path: str, what: str) -> float:
    reply = hub(run, "GET", path)
    items = run.status(reply, f"GET {what}")
    run.require(isinstance(items, list), f"{what} is a list", "", reply.exchange)
    return round(sum(float(item.get("value", 0)) for item in items if isinstance(item, dict)), 2)


def post_remainder(
    run: Run, path: str, what: str, authorized: float, parts: tuple[float, ...]
) -> None:
    """As the Hub: read what was done, POST part of the rest, until nothing is left; then one
    cent more must be refused."""
    for part in parts:
        done = total(run, path, f"the {what}")
        value = round(min(part, authorized - done), 2)
        reply = hub(run, "POST", path, {"value": value, "requestId": uuid.uuid4().hex})
        run.status(reply, f"POST {what} of {value:.2f}")
        run.equals(reply, "value", value)
        run.present(reply, "oid")
    run.expect(
        abs(total(run, path, f"the {what}") - authorized) < 0.005,
        f"the {what} add up to {authorized:.2f}",
    )
    over = hub(run, "POST", path, {"value": 0.01, "requestId": uuid.uuid4().hex})
    run.expect(
        over.status is not None and 400 <= over.status < 500,
        f"one cent more of {what} is refused",
        f"answered {over.status}",
        over.exchange,
    )


# ----------------------------------------------------------------------------- the flows


def checkout(run: Run) -> None:
    card = new_card(run, 100.0)
    search = {
        "client": {"id": "hml", "email": card.owner, "document": None},
        "cart": {
            "grandTotal": 31.9,
            "redemptionCode": None,
            "discounts": 0,
            "shipping": 0,
            "taxes": 0,
            "items": [],
            "itemsTotal": 31.9,
        },
    }
    found = hub(run, "POST", "/giftcards/_search", search)
    cards = run.status(found, "POST /giftcards/_search answers 200")
    ids = (
        [item.get("id") for item in cards if isinstance(item, dict)]
        if isinstance(cards, list)
        else []
    )
    run.expect(
        ids == [card.id], "the shopper's card is found by email", f"found {ids}", found.exchange
    )
    balance(run, card, 100.0, "before the order")
    reply = debit(run, card, 31.9)
    transaction = run.status(reply, "a Debit of 31.90 answers 200")
    run.require(bool(transaction.get("id")), "the Debit has an id", "", reply.exchange)
    balance(run, card, 68.1, "after the Debit")
    path = f"{card.path}/transactions/{transaction['id']}"
    authorization = hub(run, "GET", f"{path}/authorization")
    run.status(authorization, "GET the authorization")
    run.equals(authorization, "value", 31.9)
    post_remainder(run, f"{path}/settlements", "settlements", 31.9, (20.0, 11.9))
    post_remainder(run, f"{path}/cancellations", "cancellations", 31.9, (10.0, 21.9))
    balance(run, card, 100.0, "after the refund")


def release_before_settlement(run: Run) -> None:
    card = new_card(run, 50.0)
    reply = debit(run, card, 20.0)
    transaction = run.status(reply, "a Debit of 20.00 answers 200")
    balance(run, card, 30.0, "after the Debit")
    path = f"{card.path}/transactions/{transaction['id']}/cancellations"
    released = hub(run, "POST", path, {"value": 20.0, "requestId": uuid.uuid4().hex})
    run.status(released, "cancelling the whole Debit answers 200")
    balance(run, card, 50.0, "after the release")


def idempotent_debit(run: Run) -> None:
    card = new_card(run, 40.0)
    request_id = uuid.uuid4().hex.upper()
    first = debit(run, card, 15.0, request_id)
    again = debit(run, card, 15.0, request_id)
    run.status(first, "the Debit answers 200")
    run.status(again, "the same Debit again answers 200")
    run.expect(
        again.field("id") == first.field("id"),
        "a repeated requestId answers the same transaction",
        f"{first.field('id')!r} then {again.field('id')!r}",
        first.exchange,
        again.exchange,
    )
    balance(run, card, 25.0, "after the repeat")


def no_overspend(run: Run) -> None:
    card = new_card(run, 10.0)
    over = debit(run, card, 10.01)
    run.expect(
        over.status is not None and 400 <= over.status < 500,
        "a Debit above the balance is refused",
        f"answered {over.status}",
        over.exchange,
    )
    balance(run, card, 10.0, "after the refusal")


def credential_probes(run: Run) -> None:
    """The Hub checks providers with missing and wrong credentials: empty 401 and 403."""
    probes = {
        "no credentials": ({}, 401),
        "a wrong token": (
            {
                "X-PROVIDER-API-AppKey": run.client.target.app_key,
                "X-PROVIDER-API-AppToken": "wrong-" + uuid.uuid4().hex,
            },
            403,
        ),
    }
    for name, (headers, expected) in probes.items():
        for method, path, body in (
            ("POST", "/giftcards/_search", {"client": {"email": "x@example.com"}}),
            ("GET", "/giftcards/1", None),
        ):
            reply = run.call(
                GIFTCARDS,
                method,
                path,
                json_body=body,
                headers={**HUB, **headers},
                authenticated=False,
            )
            run.expect(
                reply.status == expected and reply.text == "",
                f"{method} {path} with {name}: empty {expected}",
                f"answered {reply.status} with {len(reply.text)} characters",
                reply.exchange,
            )


SCENARIOS = (
    Definition(
        GIFTCARDS,
        "Checkout: search, debit, settle, refund",
        "Gift Card Hub: purchase, invoice and return flows (B1.1)",
        checkout,
    ),
    Definition(
        GIFTCARDS,
        "Release before settlement",
        "Gift Card Hub: order cancelled before invoicing (B1.1)",
        release_before_settlement,
    ),
    Definition(
        GIFTCARDS, "Idempotent Debit", "Gift card reference B6.4: requestId", idempotent_debit
    ),
    Definition(
        GIFTCARDS, "No overspend", "Gift card reference B7: insufficient balance", no_overspend
    ),
    Definition(
        GIFTCARDS,
        "Credential probes",
        "Gift card reference B4: the Hub's 401/403 probes",
        credential_probes,
    ),
)
