"""Answers checked against VTEX's own specifications, where they describe what we serve.

`homologation/vtex_specs/` holds verbatim copies of VTEX's three OpenAPI 3.0 documents (the
Payment, Anti-fraud and Gift Card Provider Protocols). `VtexSpecs.differences` validates one
answer's JSON body against VTEX's response schema for its operation and status. A difference is
either *known* (a deliberate departure from VTEX's document, listed in `KNOWN_DEVIATIONS` with
the reason, each one also documented in `openapi.yaml` or `tests/test_openapi_document.py`) or
unexpected: a bug in the service, or a change in VTEX's document that nobody looked at yet.

Nothing overlaps (no difference) where VTEX's document has no such operation, or no JSON
schema for that status: VTEX documents few error answers, and none of our 4xx.

The OpenAPI 3.0 schemas become JSON Schema (draft 4, which OpenAPI 3.0's schema object extends:
boolean `exclusiveMinimum`, `$ref` siblings ignored) by rewriting `nullable`; `format` is not
validated, VTEX's own examples do not follow its formats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema_rs

PAYMENTS, ANTIFRAUD, GIFTCARDS = "payments", "antifraud", "giftcards"
SPEC_FILES = {
    PAYMENTS: "payment-provider-protocol.json",
    ANTIFRAUD: "antifraud-provider-protocol.json",
    GIFTCARDS: "giftcard-provider-protocol.json",
}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Paths we serve that VTEX names differently (relative to the protocol's mount), compared with
# VTEX's operation that serves the same requests: the single-"l" cancellation and the older
# inbound-request path are aliases (openapi.yaml, cancelPaymentAlias and inboundRequestAlias).
PATH_ALIASES: dict[str, tuple[tuple[str, str], ...]] = {
    PAYMENTS: (
        (r"^/payments/([^/]+)/cancelations$", r"/payments/\1/cancellations"),
        (r"^/payments/([^/]+)/inbound-request/([^/]+)$", r"/payments/\1/inbound/\2"),
    ),
}


@dataclass(frozen=True)
class Difference:
    protocol: str
    method: str
    path_template: str  # VTEX's path template, e.g. /payments/{paymentId}/settlements
    status: int
    message: str  # what differs, e.g. '$.tid: null is not of type "string"'
    known: str | None  # why, when it is a documented deliberate deviation; None = unexpected


@dataclass(frozen=True)
class KnownDeviation:
    """A deliberate departure from VTEX's document, for one of its operations (method and VTEX's
    path template). `pointer` is a regular expression the JSON path of the offending value must
    match whole (for `$.status`: `\\$\\.status`; `\\$` is the body itself), `message` one the
    difference's message must contain."""

    protocol: str
    method: str
    path_template: str
    pointer: str
    message: str
    reason: str
    statuses: frozenset[int] = frozenset({200})

    def matches(self, difference: Difference, pointer: str) -> bool:
        return (
            difference.protocol == self.protocol
            and difference.method == self.method
            and difference.path_template == self.path_template
            and difference.status in self.statuses
            and re.fullmatch(self.pointer, pointer) is not None
            and re.search(self.message, difference.message) is not None
        )


def _fields(*names: str) -> str:
    """The pointer of any of these top-level fields."""
    return r"\$\.(?:" + "|".join(re.escape(name) for name in names) + ")"


# `null` where VTEX's schema has a type without `nullable`.
_NULL = r": null is not of type"
_NOT_APPLICABLE = (
    "null when it does not apply: VTEX's schema omits `nullable`, its own examples send null "
    "for what does not apply (`authorizationId`, `nsu`, `paymentUrl`, `acquirer`, `code`, "
    "`message`); openapi.yaml documents every such field as nullable and always present"
)
_REFUSED = (
    "a refused operation answers 200 with a null operation id, value 0 and a code saying why "
    '(openapi.yaml, "Cumulative limits"); VTEX\'s schema has no refusal and types the id as '
    "a string"
)
_AF_TRANSACTION_GET = "/transactions/{transactions.id}"
_AF_TRANSACTION_PUT = "/transactions/{transactionId}"
_AF_TRANSACTION_DELETE = "/transactions/{transactions.Id}"
_AF_SAMPLE_KEYS = (
    "VTEX's `Responses` requires its sample keys (`foo`, `custom`) of what is a free dictionary "
    "of strings: the keys are the rules that fired (tests/test_openapi_document.py, "
    "ANTIFRAUD_NOT_COMPARED)"
)

# Each entry is documented in openapi.yaml (the description's "Anti-fraud Provider Protocol"
# section says how each contradiction in VTEX's anti-fraud documents is resolved; the schemas
# say which fields are nullable) and in tests/test_openapi_document.py
# (KNOWN_RESPONSE_TYPE_DEVIATIONS, ANTIFRAUD_DEVIATIONS, ANTIFRAUD_NOT_COMPARED,
# ANTIFRAUD_RESPONSES_NOT_COMPARED).
KNOWN_DEVIATIONS: tuple[KnownDeviation, ...] = (
    # ----- Payment Provider Protocol
    KnownDeviation(
        PAYMENTS,
        "POST",
        "/payments",
        _fields("maxValue"),
        r": -?[0-9]+\.[0-9]+ is not of type \"integer\"",
        "VTEX's schema types maxValue as an integer, its own callback example sends 16.6: a "
        "decimal amount (tests/test_openapi_document.py, KNOWN_RESPONSE_TYPE_DEVIATIONS)",
    ),
    KnownDeviation(
        PAYMENTS,
        "POST",
        "/payments",
        _fields(
            "authorizationId",
            "nsu",
            "acquirer",
            "code",
            "message",
            "paymentUrl",
            "redirectUrl",
            "bankIssueInvoiceId",
            "identificationNumber",
            "identificationNumberFormatted",
            "barCodeImageType",
            "barCodeImageNumber",
            "paymentAppData",
            "maxValue",
            "connectorMetadata",
            "cardBrand",
            "firstDigits",
            "lastDigits",
        ),
        _NULL,
        _NOT_APPLICABLE,
    ),
    KnownDeviation(
        PAYMENTS, "POST", "/payments/{paymentId}/settlements", _fields("settleId"), _NULL, _REFUSED
    ),
    KnownDeviation(
        PAYMENTS, "POST", "/payments/{paymentId}/refunds", _fields("refundId"), _NULL, _REFUSED
    ),
    KnownDeviation(
        PAYMENTS,
        "POST",
        "/payments/{paymentId}/cancellations",
        _fields("cancellationId"),
        _NULL,
        _REFUSED,
    ),
    KnownDeviation(
        PAYMENTS,
        "POST",
        "/payments/{paymentId}/inbound/{action}",
        _fields("code", "message", "tid", "nsu", "authorizationId", "transactionId", "paymentId"),
        _NULL,
        _NOT_APPLICABLE,
    ),
    # ----- Gift Card Provider Protocol
    KnownDeviation(
        GIFTCARDS,
        "POST",
        "/giftcards",
        _fields("caption", "profileId", "expiringDate"),
        _NULL,
        "a card created without them has no caption, owner or expiry: openapi.yaml documents "
        "them as nullable (`expiringDate` null when the card never expires), VTEX's schema "
        "omits `nullable`",
    ),
    KnownDeviation(
        GIFTCARDS,
        "GET",
        "/giftcards/{giftCardId}",
        _fields("caption", "relationName", "expiringDate"),
        _NULL,
        "a card without caption, relation name or expiry: openapi.yaml documents them as "
        "nullable (`expiringDate` null when the card never expires), VTEX's schema omits "
        "`nullable`",
    ),
    KnownDeviation(
        GIFTCARDS,
        "GET",
        "/giftcards/{giftCardId}/transactions/{transactionId}",
        _fields("description"),
        _NULL,
        "a transaction made without a description (a load through the Hub's API, a Credit) "
        "has none: openapi.yaml documents it as nullable, VTEX's schema omits `nullable` (the "
        "Hub itself always sends one)",
    ),
    # ----- Anti-fraud Provider Protocol
    *(
        KnownDeviation(
            ANTIFRAUD,
            method,
            template,
            _fields("responses"),
            r'"(?:foo|custom)" is a required property',
            _AF_SAMPLE_KEYS,
        )
        for method, template in (
            ("POST", "/pre-analysis"),
            ("POST", "/transactions"),
            ("GET", _AF_TRANSACTION_GET),
        )
    ),
    KnownDeviation(
        ANTIFRAUD,
        "POST",
        "/transactions",
        _fields("status"),
        r'"received" is not one of',
        "VTEX's schema reuses the pre-analysis enum (approved, denied); its test suite and "
        "older reference expect `received` while the analysis is pending (openapi.yaml; "
        "tests/test_openapi_document.py, ANTIFRAUD_DEVIATIONS, reference A5.3)",
    ),
    KnownDeviation(
        ANTIFRAUD,
        "PUT",
        _AF_TRANSACTION_PUT,
        _fields("responses"),
        r"is not of type",
        "VTEX's PUT schema types `responses` as a nullable string, its POST and GET schemas as "
        "an object of strings: the object is always sent (tests/test_openapi_document.py, "
        "ANTIFRAUD_DEVIATIONS, reference A8)",
    ),
    KnownDeviation(
        ANTIFRAUD,
        "DELETE",
        _AF_TRANSACTION_DELETE,
        r"\$.*",
        "",
        "VTEX's DELETE answer is a copy of another endpoint's (a list of payment methods, "
        "reference A9): the stop answers {id, tid, status, stopped} instead, `tid` null when "
        "the analysis has none (openapi.yaml, antifraudStopTransaction; "
        "tests/test_openapi_document.py, ANTIFRAUD_RESPONSES_NOT_COMPARED)",
    ),
)


def _pointer(path: Iterator[str | int] | list[str | int]) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _lookup(root: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(node: Any, root: Mapping[str, Any]) -> Any:
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"circular reference {ref!r}")
        seen.add(ref)
        node = _lookup(root, ref)
    return node


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as a draft 4 JSON Schema: `nullable: true` admits `null`."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is not True:
        return converted
    if "$ref" in converted:  # siblings of $ref are ignored: wrap it
        return {"anyOf": [converted, {"type": "null"}]}
    declared = converted.get("type")
    if isinstance(declared, str):
        converted["type"] = [declared, "null"]
    elif isinstance(declared, list) and "null" not in declared:
        converted["type"] = [*declared, "null"]
    enum = converted.get("enum")
    if isinstance(enum, list) and None not in enum:
        converted["enum"] = [*enum, None]
    return converted


def _json_media_schema(content: Mapping[str, Any]) -> Any:
    if "application/json" in content:
        return content["application/json"].get("schema")
    for media_type, media in content.items():
        main, _, sub = media_type.partition("/")
        if main == "application" and (sub == "json" or sub.endswith("+json")):
            return media.get("schema")
    return None


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    literal_length: int  # characters outside parameters: the most specific template wins
    responses: Mapping[str, Any]


class VtexSpecs:
    """VTEX's three specifications, ready to validate answers (validators compiled on first
    use, per operation and status)."""

    def __init__(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        self._documents = dict(documents)
        self._operations: dict[str, list[_Operation]] = {}
        self._components: dict[str, Any] = {}
        for protocol, document in self._documents.items():
            operations = []
            for template, item in document.get("paths", {}).items():
                for method in HTTP_METHODS:
                    if isinstance(item.get(method), dict):
                        literal = len(re.sub(r"\{[^}]+\}", "", template))
                        operations.append(
                            _Operation(
                                method.upper(),
                                template,
                                _template_regex(template),
                                literal,
                                item[method].get("responses", {}),
                            )
                        )
            operations.sort(key=lambda operation: -operation.literal_length)
            self._operations[protocol] = operations
            self._components[protocol] = to_json_schema(document.get("components", {}))
        self._validators: dict[tuple[str, str, str, int], jsonschema_rs.Validator | None] = {}

    @classmethod
    def load(cls) -> VtexSpecs:
        folder = resources.files("homologation") / "vtex_specs"
        return cls(
            {
                protocol: json.loads((folder / name).read_text(encoding="utf-8"))
                for protocol, name in SPEC_FILES.items()
            }
        )

    def __reduce__(self) -> tuple[type[VtexSpecs], tuple[dict[str, Mapping[str, Any]]]]:
        """Pickled as its documents (validators are compiled again where it is unpickled)."""
        return (VtexSpecs, (self._documents,))

    @property
    def protocols(self) -> tuple[str, ...]:
        return tuple(self._documents)

    def operation(self, protocol: str, method: str, path: str) -> str | None:
        """VTEX's path template for a request path relative to the protocol's mount, if VTEX's
        document has that operation."""
        path = path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")  # every path is also served with a trailing slash
        for pattern, replacement in PATH_ALIASES.get(protocol, ()):
            path = re.sub(pattern, replacement, path)
        method = method.upper()
        for operation in self._operations.get(protocol, ()):
            if operation.method == method and operation.regex.match(path):
                return operation.template
        return None

    def _validator(
        self, protocol: str, method: str, template: str, status: int
    ) -> jsonschema_rs.Validator | None:
        key = (protocol, method, template, status)
        if key in self._validators:
            return self._validators[key]
        document = self._documents[protocol]
        (operation,) = [
            o for o in self._operations[protocol] if o.method == method and o.template == template
        ]
        responses = operation.responses
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        schema = None
        if response is not None:
            resolved = _resolve(response, document)
            schema = _json_media_schema(resolved.get("content", {}))
        validator = None
        if schema is not None:
            root = {"allOf": [to_json_schema(schema)], "components": self._components[protocol]}
            validator = jsonschema_rs.Draft4Validator(root, validate_formats=False)
        self._validators[key] = validator
        return validator

    def differences(
        self, protocol: str, method: str, path: str, status: int, body: object
    ) -> list[Difference]:
        """How an answer (its JSON body, parsed; `None` for an empty one) differs from VTEX's
        schema for the operation and status; [] when VTEX has nothing to compare with."""
        if protocol not in self._documents:
            return []
        method = method.upper()
        template = self.operation(protocol, method, path)
        if template is None:
            return []
        validator = self._validator(protocol, method, template, status)
        if validator is None:
            return []
        found: list[tuple[str, str]] = []
        if isinstance(body, str | bytes):
            found.append(("$", "$: the body is not JSON"))
        else:
            for error in validator.iter_errors(body):
                pointer = _pointer(list(error.instance_path))
                found.append((pointer, f"{pointer}: {error.message}"))
        result = []
        for pointer, message in found:
            difference = Difference(protocol, method, template, status, message, None)
            known = next((d for d in KNOWN_DEVIATIONS if d.matches(difference, pointer)), None)
            if known is not None:
                difference = Difference(protocol, method, template, status, message, known.reason)
            result.append(difference)
        return result
