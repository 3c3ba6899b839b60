"""`homologation.vtex_specs`: answers against VTEX's own specifications."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from homologation.vtex_specs import KNOWN_DEVIATIONS, VtexSpecs, to_json_schema


@pytest.fixture(scope="module")
def specs() -> VtexSpecs:
    return VtexSpecs.load()


APPROVED: dict[str, Any] = {
    "paymentId": "F5C1A4E20D3B4E07B7E871F5B5BC9F91",
    "status": "approved",
    "authorizationId": "AUT123567",
    "nsu": "NSU987432",
    "tid": "TID1578324421",
    "acquirer": "FooBarPayments",
    "code": "2000",
    "message": "approved",
    "delayToAutoSettle": 432000,
    "delayToAutoSettleAfterAntifraud": 120,
    "delayToCancel": 600,
}


def test_the_three_specifications_load(specs: VtexSpecs) -> None:
    assert specs.protocols == ("payments", "antifraud", "giftcards")


def test_a_conforming_answer_has_no_difference(specs: VtexSpecs) -> None:
    assert specs.differences("payments", "POST", "/payments", 200, APPROVED) == []
    settled = {
        "paymentId": "P1",
        "settleId": "S1",
        "value": 10.5,
        "code": None,
        "message": "ok",
        "requestId": "R1",
    }
    assert specs.differences("payments", "post", "/payments/P1/settlements", 200, settled) == []


def test_a_wrong_type_is_an_unexpected_difference_naming_the_field(specs: VtexSpecs) -> None:
    (difference,) = specs.differences(
        "payments", "POST", "/payments", 200, {**APPROVED, "tid": None}
    )
    assert difference.known is None
    assert difference.message == '$.tid: null is not of type "string"'
    assert (difference.protocol, difference.method, difference.path_template) == (
        "payments",
        "POST",
        "/payments",
    )
    assert difference.status == 200


def test_a_missing_required_field_is_named(specs: VtexSpecs) -> None:
    body = {key: value for key, value in APPROVED.items() if key != "nsu"}
    (difference,) = specs.differences("payments", "POST", "/payments", 200, body)
    assert difference.message == '$: "nsu" is a required property'
    assert difference.known is None


def test_nested_paths_are_named(specs: VtexSpecs) -> None:
    differences = specs.differences(
        "giftcards", "GET", "/giftcards/12/transactions", 200, [{"id": 1}]
    )
    assert '$[0].id: 1 is not of type "string"' in [d.message for d in differences]


def test_known_deviations_carry_their_reason(specs: VtexSpecs) -> None:
    (refused,) = specs.differences(
        "payments",
        "POST",
        "/payments/abc/settlements",
        200,
        {"paymentId": "abc", "settleId": None, "value": 0, "code": "x", "message": "m",
         "requestId": "r"},
    )  # fmt: skip
    assert refused.known is not None and "refused" in refused.known
    (decimal,) = specs.differences(
        "payments", "POST", "/payments", 200, {**APPROVED, "maxValue": 16.6}
    )
    assert decimal.known is not None and "16.6" in decimal.known
    # The anti-fraud stop answers another shape than VTEX's copy of another endpoint's answer.
    stopped = specs.differences(
        "antifraud", "DELETE", "/transactions/X1", 200,
        {"id": "X1", "tid": None, "status": "approved", "stopped": True},
    )  # fmt: skip
    assert stopped and all(d.known is not None for d in stopped)
    received = specs.differences(
        "antifraud", "POST", "/transactions", 200,
        {"id": "X1", "tid": "T", "status": "received", "score": 0, "fraudRiskPercentage": 0,
         "analysisType": "automatic", "responses": {"foo": "a", "custom": "b"}, "code": "c",
         "message": "m"},
    )  # fmt: skip
    assert [d.message for d in received] == [
        '$.status: "received" is not one of "approved" or "denied"'
    ]
    assert received[0].known is not None


def test_a_known_pattern_does_not_hide_another_difference(specs: VtexSpecs) -> None:
    """maxValue may be a decimal (known), not a string."""
    (difference,) = specs.differences(
        "payments", "POST", "/payments", 200, {**APPROVED, "maxValue": "16.6"}
    )
    assert difference.known is None


def test_paths_are_matched_against_the_templates(specs: VtexSpecs) -> None:
    assert specs.operation("payments", "POST", "/payments/abc/settlements") == (
        "/payments/{paymentId}/settlements"
    )
    # The gift card protocol serves a trailing slash too; the Hub adds a cache-buster.
    assert specs.operation("giftcards", "GET", "/giftcards/12/transactions/?ts=1") == (
        "/giftcards/{giftCardId}/transactions"
    )
    assert specs.operation("giftcards", "POST", "/giftcards/_search") == "/giftcards/_search"
    # Our aliases are compared with VTEX's operation that serves the same requests.
    assert specs.operation("payments", "POST", "/payments/abc/cancelations") == (
        "/payments/{paymentId}/cancellations"
    )
    assert specs.operation("antifraud", "GET", "/transactions/X1") == (
        "/transactions/{transactions.id}"
    )


def test_nothing_to_compare_is_no_difference(specs: VtexSpecs) -> None:
    # No such path, no such method, no schema for the status, no such protocol.
    assert specs.differences("payments", "POST", "/nowhere", 200, {}) == []
    assert specs.differences("payments", "GET", "/payments", 200, {}) == []
    assert specs.differences("payments", "POST", "/payments", 404, {}) == []
    assert specs.differences("giftcards", "GET", "/giftcards/1", 401, None) == []
    assert specs.differences("operators", "GET", "/admin/giftcards", 200, {}) == []


def test_an_answer_that_is_not_json(specs: VtexSpecs) -> None:
    (difference,) = specs.differences("payments", "GET", "/manifest", 200, "<html>")
    assert difference.message == "$: the body is not JSON"


def test_nullable_becomes_null_admitted() -> None:
    assert to_json_schema({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert to_json_schema({"enum": ["a"], "nullable": True}) == {"enum": ["a", None]}
    assert to_json_schema({"$ref": "#/x", "nullable": True}) == {
        "anyOf": [{"$ref": "#/x"}, {"type": "null"}]
    }
    nested = to_json_schema({"properties": {"a": {"type": "integer", "nullable": True}}})
    assert nested == {"properties": {"a": {"type": ["integer", "null"]}}}


def test_every_known_deviation_names_an_operation_of_vtex(specs: VtexSpecs) -> None:
    for deviation in KNOWN_DEVIATIONS:
        assert deviation.reason
        path = deviation.path_template.replace("{", "").replace("}", "")
        assert specs.operation(deviation.protocol, deviation.method, path) == (
            deviation.path_template
        ), deviation


def test_specs_travel_to_worker_processes(specs: VtexSpecs) -> None:
    specs.differences("payments", "POST", "/payments", 200, APPROVED)  # compiles a validator
    copy = pickle.loads(pickle.dumps(specs))  # noqa: S301 - our own bytes
    assert copy.differences("payments", "POST", "/payments", 200, {**APPROVED, "tid": 1})
