"""Static checks of ``protocol/acquirer-api.yaml`` against the models of ``protocol/acquirer.py``.

The document must be a valid OpenAPI 3.0 description, describe every model and enum of the module
with the same property names (the aliases), JSON types, nullability, constraints, defaults and
required lists, carry examples that the models accept unchanged, and document the routes, statuses
and security the connector's ``http`` acquirer relies on. Nothing is served: the document is only
read from disk.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from protocol import acquirer
from tests import openapi_walk as walk

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT_PATH = ROOT / "protocol" / "acquirer-api.yaml"

SCHEMA_PREFIX = "#/components/schemas/"
SECURITY_SCHEME = "ApiKey"

# Every wire model and enum the module defines (its private base class aside).
MODELS: dict[str, type[BaseModel]] = {
    name: value
    for name, value in vars(acquirer).items()
    if isinstance(value, type)
    and issubclass(value, BaseModel)
    and value.__module__ == acquirer.__name__
    and not name.startswith("_")
}
ENUMS: dict[str, type[enum.Enum]] = {
    name: value
    for name, value in vars(acquirer).items()
    if isinstance(value, type)
    and issubclass(value, enum.Enum)
    and value.__module__ == acquirer.__name__
}

# operationId: (method, path, request body schema, {status: response body schema}).
OPERATIONS: dict[str, tuple[str, str, str | None, dict[str, str]]] = {
    "createAuthorization": (
        "post",
        "/authorizations",
        "AuthorizationCreate",
        {"200": "Authorization", "400": "ApiError", "401": "ApiError", "409": "ApiError"},
    ),
    "getAuthorization": (
        "get",
        "/authorizations/{reference}",
        None,
        {"200": "Authorization", "401": "ApiError", "404": "ApiError"},
    ),
    **{
        operation_id: (
            "post",
            f"/authorizations/{{reference}}/{kind}",
            "OperationCreate",
            {
                "200": "Operation",
                "400": "ApiError",
                "401": "ApiError",
                "404": "ApiError",
                "409": "ApiError",
            },
        )
        for operation_id, kind in (
            ("createCapture", "captures"),
            ("createRefund", "refunds"),
            ("createVoid", "voids"),
        )
    },
    "getOperation": (
        "get",
        "/operations/{reference}",
        None,
        {"200": "Operation", "401": "ApiError", "404": "ApiError"},
    ),
    "handleInbound": (
        "post",
        "/authorizations/{reference}/inbound/{action}",
        "InboundCall",
        {"200": "InboundReply", "400": "ApiError", "401": "ApiError", "404": "ApiError"},
    ),
}

# The ApiError codes each error status documents; 404s depend on the operation.
ERROR_CODES = {"400": {"invalid-request"}, "401": {"unauthorized"}, "409": {"reference-conflict"}}
NOT_FOUND_CODES = {
    "getAuthorization": {"authorization-not-found"},
    "getOperation": {"operation-not-found"},
    "createCapture": {"authorization-not-found"},
    "createRefund": {"authorization-not-found"},
    "createVoid": {"authorization-not-found"},
    "handleInbound": {"unknown-action", "authorization-not-found"},
}

# Validation keywords compared between a model's JSON schema and the document.
CONSTRAINT_KEYWORDS = (
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "enum",
    "format",
)
# OpenAPI 3.0 keywords that are not JSON Schema validation keywords.


# --------------------------------------------------------------------------------------------
# Loading and walking the document


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = yaml.safe_load(DOCUMENT_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), f"{DOCUMENT_PATH.name} must contain a mapping"
    return loaded


def _schema_name(media: dict[str, Any] | None) -> str | None:
    """The component a JSON media type object's schema refers to."""
    if media is None:
        return None
    schema = media.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    ref = schema.get("$ref", "")
    assert ref.startswith(SCHEMA_PREFIX), f"body schema must be a component reference: {schema}"
    return str(ref.removeprefix(SCHEMA_PREFIX))


def _examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        yield name, example["value"]


def _bodies(root: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every request body and response of every operation, references followed."""
    for path, method, operation in walk.operations(root):
        where = f"{method.upper()} {path}"
        if "requestBody" in operation:
            yield f"{where} request", walk.resolve(operation["requestBody"], root)
        for status, response in operation.get("responses", {}).items():
            yield f"{where} {status}", walk.resolve(response, root)


def _documented_examples(root: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(where, schema component, example) for every JSON body example in the document."""
    for where, body in _bodies(root):
        for media_type, media in body.get("content", {}).items():
            assert media_type == "application/json", f"{where}: unexpected {media_type}"
            name = _schema_name(body)
            assert name is not None, f"{where}: a body without a schema"
            for label, example in _examples(media):
                yield f"{where} [{label}]", name, example


def _error_codes(root: dict[str, Any], response: dict[str, Any]) -> set[str]:
    media = walk.resolve(response, root).get("content", {}).get("application/json", {})
    return {example["code"] for _, example in _examples(media)}


# --------------------------------------------------------------------------------------------
# Comparing schemas


def _facts(node: dict[str, Any], nullable: bool, ref_prefix: str) -> dict[str, Any]:
    """What a property schema says, in a form both sides share."""
    ref = node.get("$ref")
    if ref is not None:
        assert ref.startswith(ref_prefix), f"unexpected reference {ref!r}"
    facts: dict[str, Any] = {
        "type": ref.removeprefix(ref_prefix) if ref is not None else node.get("type"),
        "nullable": nullable,
    }
    facts.update({key: node[key] for key in CONSTRAINT_KEYWORDS if key in node})
    if node.get("default") is not None:
        facts["default"] = node["default"]
    return facts


def _model_property(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic property: ``X | None`` is ``anyOf: [X, {type: null}]``."""
    node = dict(schema)
    nullable = False
    if "anyOf" in node:
        members = node.pop("anyOf")
        others = [member for member in members if member.get("type") != "null"]
        assert len(others) == 1, f"cannot compare a union of {members}"
        nullable = len(others) < len(members)
        node = {**others[0], **node}
    facts = _facts(node, nullable, "#/$defs/")
    assert facts["type"] is not None, f"a model property without a type: {schema}"
    return facts


def _document_property(schema: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 property: ``nullable: true``, and a nullable or defaulted reference is
    wrapped in a one-member ``allOf`` (siblings of ``$ref`` are ignored in 3.0)."""
    node = dict(schema)
    nullable = node.pop("nullable", False) is True
    if "allOf" in node:
        members = node.pop("allOf")
        assert len(members) == 1, f"cannot compare an allOf of {members}"
        node = {**members[0], **node}
    return _facts(node, nullable, SCHEMA_PREFIX)


def _schema_errors(name: str, instance: Any, root: dict[str, Any]) -> list[str]:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = walk.to_json_schema({"$ref": f"{SCHEMA_PREFIX}{name}"}, root)
    validator = jsonschema_rs.Draft4Validator(schema)
    return [
        f"/{'/'.join(map(str, error.instance_path))}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


# --------------------------------------------------------------------------------------------
# The document itself


def test_acquirer_api_yaml_is_a_valid_openapi_30_document(document: dict[str, Any]) -> None:
    assert str(document.get("openapi", "")).startswith("3.0."), "must stay OpenAPI 3.0.x"
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        validator = importlib.import_module("openapi_spec_validator")
        validator.validate(document)
        return
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_path(DOCUMENT_PATH)
    schema.validate()  # OpenAPI 3.0 meta-schema validation
    loaded = list(schema.get_all_operations())
    broken = [str(result.err()) for result in loaded if hasattr(result, "err")]
    assert not broken, "operations schemathesis cannot load:\n" + "\n".join(broken)
    assert len(loaded) == len(OPERATIONS)


def test_server_is_the_configured_base_url_placeholder(document: dict[str, Any]) -> None:
    urls = [server["url"] for server in document["servers"]]
    assert urls == ["https://core.provider.example/acquirer/v1"]
    assert "CONNECTOR_ACQUIRER_URL" in document["servers"][0]["description"]


def test_operations_are_the_acquirer_api_routes(document: dict[str, Any]) -> None:
    found = {
        operation.get("operationId"): (method, path, operation)
        for path, method, operation in walk.operations(document)
    }
    assert len(found) == len(list(walk.operations(document))), "duplicate or missing operationIds"
    assert set(found) == set(OPERATIONS)
    problems: list[str] = []
    for operation_id, (method, path, request, responses) in OPERATIONS.items():
        actual_method, actual_path, operation = found[operation_id]
        if (actual_method, actual_path) != (method, path):
            problems.append(
                f"{operation_id}: at {actual_method} {actual_path}, not {method} {path}"
            )
            continue
        body = walk.resolve(operation.get("requestBody"), document)
        if _schema_name(body) != request:
            problems.append(f"{operation_id}: request body {_schema_name(body)}, not {request}")
        if body is not None and body.get("required") is not True:
            problems.append(f"{operation_id}: the request body must be required")
        documented = operation.get("responses", {})
        for status, schema in responses.items():
            if status not in documented:
                problems.append(f"{operation_id}: response {status} not documented")
                continue
            actual = _schema_name(walk.resolve(documented[status], document))
            if actual != schema:
                problems.append(f"{operation_id} {status}: body {actual}, not {schema}")
        # 5xx means "unknown outcome": documented, and never given a body the connector reads.
        if "5XX" not in documented:
            problems.append(f"{operation_id}: the 5XX (unknown outcome) response is missing")
        elif _schema_name(walk.resolve(documented["5XX"], document)) is not None:
            problems.append(f"{operation_id}: the 5XX response must not promise a body")
        extra = set(documented) - set(responses) - {"5XX"}
        if extra:
            problems.append(f"{operation_id}: statuses {sorted(extra)} the table does not expect")
    assert not problems, "\n".join(problems)


def test_every_operation_requires_the_api_key_and_documents_401(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"][SECURITY_SCHEME]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        "apiKey",
        "header",
        acquirer.API_KEY_HEADER,
    )
    assert "X-PROVIDER-Forward-Api-Key" in scheme["description"]
    problems: list[str] = []
    for path, method, operation in walk.operations(document):
        where = f"{method.upper()} {path}"
        security = operation.get("security", document.get("security"))
        if security != [{SECURITY_SCHEME: []}]:
            problems.append(f"{where}: security is {security}, not the {SECURITY_SCHEME} key")
        unauthorized = operation.get("responses", {}).get("401")
        if unauthorized is None:
            problems.append(f"{where}: 401 not documented")
        elif _error_codes(document, unauthorized) != ERROR_CODES["401"]:
            problems.append(f"{where}: 401 example codes {_error_codes(document, unauthorized)}")
    assert not problems, "\n".join(problems)


def test_error_responses_document_their_codes(document: dict[str, Any]) -> None:
    problems: list[str] = []
    for _, method, operation in walk.operations(document):
        operation_id = operation["operationId"]
        for status, response in operation.get("responses", {}).items():
            expected = NOT_FOUND_CODES.get(operation_id) if status == "404" else None
            expected = ERROR_CODES.get(status, expected)
            if expected is None:
                continue
            codes = _error_codes(document, response)
            if codes != expected:
                problems.append(f"{operation_id} {status}: example codes {codes}, not {expected}")
            if method == "get" and status == "404":
                # The connector's rule: "never seen" only with a code ending in -not-found.
                wrong = {code for code in codes if not code.endswith("-not-found")}
                if wrong:
                    problems.append(f"{operation_id} 404: {wrong} would read as an outage")
    assert not problems, "\n".join(problems)


def test_path_parameters(document: dict[str, Any]) -> None:
    problems: list[str] = []
    for path, method, operation in walk.operations(document):
        where = f"{method.upper()} {path}"
        parameters = {p["name"]: p for p in walk.parameters(document, path, operation)}
        if set(parameters) != set(re.findall(r"{([^}]+)}", path)):
            problems.append(f"{where}: parameters {sorted(parameters)} differ from the template")
        for name, parameter in parameters.items():
            if parameter["in"] != "path" or parameter.get("required") is not True:
                problems.append(f"{where} {name}: must be a required path parameter")
            schema = parameter["schema"]
            if schema.get("type") != "string":
                problems.append(f"{where} {name}: must be a string")
            if name == "reference" and schema.get("pattern") != acquirer.REFERENCE_PATTERN:
                problems.append(f"{where} reference: pattern is not REFERENCE_PATTERN")
            example = parameter.get("example")
            if example is None:
                problems.append(f"{where} {name}: no example")
            elif "pattern" in schema and not re.search(schema["pattern"], example):
                problems.append(f"{where} {name}: example {example!r} breaks the pattern")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Agreement with protocol/acquirer.py


def test_components_are_exactly_the_models_and_enums(document: dict[str, Any]) -> None:
    expected_models = {
        "Card",
        "AuthorizationCreate",
        "Authorization",
        "Instrument",
        "PaymentAppData",
        "OperationCreate",
        "Operation",
        "InboundCall",
        "InboundReply",
        "ApiError",
    }
    assert expected_models <= set(MODELS), "the wire models were not all found"
    assert {"Flow", "AuthorizationStatus", "OperationStatus"} <= set(ENUMS)
    assert set(document["components"]["schemas"]) == set(MODELS) | set(ENUMS)


@pytest.mark.parametrize("name", sorted(ENUMS))
def test_enum_schema_agrees_with_the_enum(document: dict[str, Any], name: str) -> None:
    schema = document["components"]["schemas"][name]
    assert schema["type"] == "string"
    assert schema["enum"] == [member.value for member in ENUMS[name]]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_schema_agrees_with_the_model(document: dict[str, Any], name: str) -> None:
    model_schema = MODELS[name].model_json_schema(by_alias=True, mode="validation")
    schema = document["components"]["schemas"][name]
    assert schema["type"] == model_schema["type"] == "object"
    assert sorted(schema.get("required", [])) == sorted(model_schema.get("required", []))
    ours = schema.get("properties", {})
    theirs = model_schema["properties"]
    assert sorted(ours) == sorted(theirs), "property names differ from the model's aliases"
    problems: list[str] = []
    for prop, model_property in theirs.items():
        expected = _model_property(model_property)
        actual = _document_property(ours[prop])
        if actual != expected:
            problems.append(f"{name}.{prop}: document {actual}, model {expected}")
    assert not problems, "\n".join(problems)


def test_model_enums_are_the_documented_enum_components(document: dict[str, Any]) -> None:
    """A property typed by an enum refers to the enum's component, whose values the model uses."""
    problems: list[str] = []
    for name, model in MODELS.items():
        definitions = model.model_json_schema(by_alias=True).get("$defs", {})
        for definition, schema in definitions.items():
            if "enum" not in schema:
                continue
            documented = document["components"]["schemas"].get(definition, {})
            if documented.get("enum") != schema["enum"]:
                problems.append(
                    f"{name} uses {definition} {schema['enum']}, documented {documented}"
                )
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------
# Examples


def test_every_example_is_accepted_unchanged_by_its_model(document: dict[str, Any]) -> None:
    """Each example validates with its model, and dumping the model gives the example back, so
    a misspelt field (which the models would silently ignore) fails too."""
    problems: list[str] = []
    checked = 0
    for where, name, example in _documented_examples(document):
        checked += 1
        if name not in MODELS:
            problems.append(f"{where}: {name} is not a model of protocol/acquirer.py")
            continue
        try:
            parsed = MODELS[name].model_validate(example)
        except ValueError as error:
            problems.append(f"{where}: {name} refuses it: {error}")
            continue
        dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if dumped != example:
            problems.append(f"{where}: {name} reads it as {dumped}")
    assert checked >= 30, f"only {checked} examples found"
    assert not problems, "\n".join(problems)


def test_every_example_matches_its_documented_schema(document: dict[str, Any]) -> None:
    problems: list[str] = []
    for where, name, example in _documented_examples(document):
        problems += [f"{where} {error}" for error in _schema_errors(name, example, document)]
    assert not problems, "\n".join(problems)


def test_examples_show_the_answers_a_core_gives(document: dict[str, Any]) -> None:
    parsed: dict[str, list[Any]] = {}
    for _, name, example in _documented_examples(document):
        parsed.setdefault(name, []).append(MODELS[name].model_validate(example))
    authorizations = parsed["Authorization"]
    operations = parsed["Operation"]
    requests = parsed["AuthorizationCreate"]
    statuses = acquirer.AuthorizationStatus
    assert any(a.status is statuses.APPROVED and a.id for a in authorizations)
    assert any(a.status is statuses.DENIED and a.code for a in authorizations)
    assert any(
        a.status is statuses.PENDING
        and a.instrument is not None
        and a.instrument.payment_app_data is not None
        and a.instrument.payment_app_data.app_name == "vtex.pix-payment"
        for a in authorizations
    ), "no pending Pix authorization with its instrument"
    assert any(o.status is acquirer.OperationStatus.SUCCEEDED and o.id for o in operations)
    assert any(o.status is acquirer.OperationStatus.REFUSED and o.code for o in operations)
    assert any(r.flow is acquirer.Flow.CARD and r.card is not None for r in requests)
    assert any(r.flow is acquirer.Flow.PIX for r in requests)
    # Cards are sent only for flow "card".
    assert all(r.card is None for r in requests if r.flow is not acquirer.Flow.CARD)
    assert any(reply.authorization is not None for reply in parsed["InboundReply"])
