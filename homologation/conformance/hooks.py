"""Generation hooks: about half of the fuzzed and stateful requests made realistic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import strategies as st

from homologation.conformance.config import TEST_SUITE_HEADER, Case, Derive
from homologation.conformance.fixtures import payment_body
from homologation.conformance.state import Fixtures, RunState, _operation_id

_TEST_SUITE_FLOWS: tuple[tuple[str, dict[str, Any] | None], ...] = (
    ("Visa", {"number": "4444333322221111"}),
    ("Mastercard", {"number": "4444333322221112"}),
    ("Visa", {"number": "4222222222222224"}),
    ("Visa", {"number": "4222222222222225"}),
    ("BankInvoice", None),
    # The Test Suite's redirect case: a card whose members are all null.
    ("Visa", {"number": None}),
)
_AMOUNTS = st.integers(min_value=1, max_value=200_000).map(lambda cents: cents / 100)
_AMOUNTS_UP_TO_300 = st.integers(min_value=1, max_value=30_000).map(lambda cents: cents / 100)
_AMOUNTS_FROM_1 = st.integers(min_value=100, max_value=5_000).map(lambda cents: cents / 100)
_CENTS = st.integers(min_value=1, max_value=100).map(lambda cents: cents / 100)
_IDS = st.uuids().map(lambda value: value.hex.upper())


def _phase(case: Case) -> str | None:
    return case.meta.phase.name.value if case.meta is not None else None


def _realistic_payment(case: Case, mint: Callable[[str], str]) -> st.SearchStrategy[Case]:
    def build(flow: int, value: float, drawn: str) -> Case:
        payment_id = mint(drawn)
        method, card = _TEST_SUITE_FLOWS[flow]
        body = payment_body(payment_id, value, None)
        body["paymentMethod"] = method
        if card is not None and card["number"] is not None:
            body["card"] = payment_body(payment_id, value, card["number"])["card"]
        case.body = body
        case.headers[TEST_SUITE_HEADER] = "true"
        return case

    flows = st.integers(min_value=0, max_value=len(_TEST_SUITE_FLOWS) - 1)
    return st.builds(build, flows, _AMOUNTS, _IDS)


def _realistic_operation(
    case: Case, payment_id: str | None, with_value: bool, derive: Derive
) -> st.SearchStrategy[Case]:
    def build(value: float, drawn: str) -> Case:
        if payment_id is not None and _phase(case) != "stateful":
            case.path_parameters = {**(case.path_parameters or {}), "paymentId": payment_id}
        body: dict[str, Any] = dict(case.body) if isinstance(case.body, dict) else {}
        target = (case.path_parameters or {}).get("paymentId")
        body.update({"requestId": derive(case.operation.label, target, value, drawn)})
        body["paymentId"] = None  # the path's is authoritative
        if with_value:
            body["value"] = value
        case.body = body
        return case

    return st.builds(build, _AMOUNTS_UP_TO_300, _IDS)


def _giftcard_case(
    case: Case, fixtures: Fixtures, operation_id: str, derive: Derive
) -> st.SearchStrategy[Case]:
    def build(value: float, cents: float, drawn: str, debit: bool) -> Case:
        stateful = _phase(case) == "stateful"
        parameters = dict(case.path_parameters or {})
        if not stateful and "giftCardId" in parameters and fixtures.card_id:
            parameters["giftCardId"] = fixtures.card_id
            transaction = (
                fixtures.cancel_transaction_id
                if operation_id.endswith("Cancellations") or operation_id.startswith("cancel")
                else fixtures.settle_transaction_id
            )
            if "transactionId" in parameters and transaction:
                parameters["transactionId"] = transaction
        if stateful and operation_id == "createGiftCardTransaction" and fixtures.card_id:
            parameters["giftCardId"] = fixtures.card_id  # a root of the flow: on the funded card
        case.path_parameters = parameters
        body: dict[str, Any] = dict(case.body) if isinstance(case.body, dict) else {}
        request_id = derive(operation_id, parameters, value, cents, drawn, debit)
        if operation_id == "createGiftCardTransaction":
            on_card = parameters.get("giftCardId") == fixtures.card_id
            body.update({"value": value, "requestId": request_id})
            body["operation"] = "Debit" if debit and on_card else "Credit"
            if on_card:
                body["redemptionToken"] = fixtures.card_token
                body["redemptionCode"] = fixtures.card_code
        elif operation_id in ("settleGiftCardTransaction", "cancelGiftCardTransaction"):
            # Less than any Debit made here: a settlement or cancellation that can be done.
            body.update({"value": cents, "requestId": request_id})
        elif operation_id == "searchGiftCards":
            body = {**body, "cart": {"redemptionCode": fixtures.card_code}}
        elif operation_id == "createGiftCard":
            body.update({"relationName": f"homologation-{request_id[:8]}", "caption": "fuzz"})
        case.body = body
        return case

    return st.builds(build, _AMOUNTS_FROM_1, _CENTS, _IDS, st.booleans())


def _antifraud_case(case: Case, fixtures: Fixtures, derive: Derive) -> st.SearchStrategy[Case]:
    def build(drawn: str) -> Case:
        parameters = dict(case.path_parameters or {})
        if "transactionId" in parameters and _phase(case) != "stateful" and fixtures.analysis_id:
            parameters["transactionId"] = fixtures.analysis_id
            case.path_parameters = parameters
        if isinstance(case.body, dict):
            if "transactionId" in parameters:
                case.body = {**case.body, "id": parameters["transactionId"]}
            else:  # a new analysis
                case.body = {**case.body, "id": derive("analysis", drawn)}
        return case

    return st.builds(build, _IDS)


def add_hooks(schema: schemathesis.BaseSchema, state: RunState) -> None:
    """Make about half of the fuzzed and stateful requests realistic (module docstring)."""
    fixtures = state.fixtures
    group = state.group.name

    def realistic(case: Case) -> st.SearchStrategy[Case] | None:
        operation_id = _operation_id(case)
        if group == "payments":
            if operation_id == "createPayment":
                return _realistic_payment(case, state.mint_payment_id)
            if operation_id in ("settlePayment", "refundPayment"):
                return _realistic_operation(case, fixtures.payment_id, True, state.derive)
            if operation_id in ("cancelPayment", "cancelPaymentAlias"):
                return _realistic_operation(case, fixtures.cancel_payment_id, False, state.derive)
        elif group == "giftcards":
            return _giftcard_case(case, fixtures, operation_id, state.derive)
        elif group == "antifraud":
            return _antifraud_case(case, fixtures, state.derive)
        return None

    @schema.hook("flatmap_case")
    def half_realistic(context: schemathesis.HookContext, case: Case) -> st.SearchStrategy[Case]:
        strategy = realistic(case)
        if strategy is None:
            return st.just(case)
        chosen = strategy
        return st.booleans().flatmap(lambda yes: chosen if yes else st.just(case))
