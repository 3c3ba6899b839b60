"""Static checks of ``openapi.yaml``.

The document must be a valid OpenAPI 3.0 description of the service, agree with VTEX's official
Payment Provider Protocol specification on every path the service serves (property names, JSON
types, enums), and document the statuses the service returns. Nothing here imports the project:
both documents are only read from disk.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import openapi_walk as walk

ROOT = Path(__file__).resolve().parents[1]
OPENAPI_PATH = ROOT / "openapi.yaml"
VTEX_SPECS_DIR = ROOT.parent / "shared" / "vtex-specs"
VTEX_SPEC_PATH = VTEX_SPECS_DIR / "payment-provider-protocol.json"

PUBLIC_OPERATIONS = frozenset({"getManifest", "listPaymentMethods"})
TEST_SUITE_HEADER = "x-vtex-api-is-testsuite"

# (our path, VTEX path, method): every VTEX path we serve. The single-"l" cancellation alias is
# compared with VTEX's "cancellations" operation, since it serves the same requests.
SERVED_VTEX_OPERATIONS = (
    ("/manifest", "/manifest", "get"),
    ("/payments", "/payments", "post"),
    ("/payments/{paymentId}/settlements", "/payments/{paymentId}/settlements", "post"),
    ("/payments/{paymentId}/refunds", "/payments/{paymentId}/refunds", "post"),
    ("/payments/{paymentId}/cancellations", "/payments/{paymentId}/cancellations", "post"),
    ("/payments/{paymentId}/cancelations", "/payments/{paymentId}/cancellations", "post"),
)

# Deliberate departures from VTEX's schema, each contradicted by VTEX's own examples.
# Key: (VTEX path, status, property path); value: why.
KNOWN_RESPONSE_TYPE_DEVIATIONS = {
    ("/payments", "200", "maxValue"): (
        "VTEX's schema says integer, but its callback example sends 16.6: we document number"
    ),
}

# OpenAPI 3.0 keywords that are not JSON Schema validation keywords.


# --------------------------------------------------------------------------------------------
# Loading


def _load_openapi() -> dict[str, Any]:
    document = yaml.safe_load(OPENAPI_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict), "openapi.yaml must contain a mapping"
    return document


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return _load_openapi()


@pytest.fixture(scope="module")
def vtex_spec() -> dict[str, Any]:
    if not VTEX_SPECS_DIR.is_dir():
        reason = f"the shared VTEX specs folder {VTEX_SPECS_DIR} is absent"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; it is required when CI=true")
        pytest.skip(f"{reason}: cannot compare openapi.yaml with VTEX's specification")
    assert VTEX_SPEC_PATH.is_file(), f"{VTEX_SPEC_PATH} is missing from {VTEX_SPECS_DIR}"
    document = json.loads(VTEX_SPEC_PATH.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


# --------------------------------------------------------------------------------------------
# Helpers


def _is_public(operation: dict[str, Any]) -> bool:
    return operation.get("operationId") in PUBLIC_OPERATIONS


def _json_schema_of(media: dict[str, Any] | None) -> Any:
    if media is None:
        return None
    return media.get("content", {}).get("application/json", {}).get("schema")


def _request_schema(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    body = walk.resolve(operation.get("requestBody"), document)
    return _json_schema_of(body)


def _response_schema(document: dict[str, Any], operation: dict[str, Any], status: str) -> Any:
    response = walk.resolve(operation.get("responses", {}).get(status), document)
    return _json_schema_of(response)


def _flatten(schema: Any, root: dict[str, Any]) -> dict[str, Any]:
    """Resolve ``$ref`` and merge ``allOf`` members into one schema."""
    schema = walk.resolve(schema, root)
    if not isinstance(schema, dict):
        return {}
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties", {}))
    for member in schema["allOf"]:
        flat = _flatten(member, root)
        properties.update(flat.get("properties", {}))
        for key, value in flat.items():
            if key != "properties":
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    return merged


def _base_types(schema: dict[str, Any]) -> set[str]:
    """JSON types a schema admits, without ``null``; empty when unconstrained."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared} - {"null"}
    if isinstance(declared, list):
        return set(declared) - {"null"}
    if "properties" in schema:
        return {"object"}
    if "items" in schema:
        return {"array"}
    return set()


def _is_nullable(schema: dict[str, Any]) -> bool:
    declared = schema.get("type")
    return schema.get("nullable") is True or (isinstance(declared, list) and "null" in declared)


def _accepts(wider: set[str], narrower: set[str]) -> bool:
    """Whether every type of ``narrower`` is accepted by ``wider`` (integer fits in number)."""
    if not wider:
        return True
    return all(t in wider or (t == "integer" and "number" in wider) for t in narrower)


def _compare(
    vtex: Any,
    ours: Any,
    *,
    vtex_root: dict[str, Any],
    our_root: dict[str, Any],
    direction: str,
    where: str,
    problems: list[str],
    allowed: dict[str, str],
    prop_path: str = "",
) -> None:
    """Collect every difference between a VTEX schema and ours.

    ``direction`` is ``"request"`` (ours must accept whatever VTEX sends, including ``null``
    where VTEX's schema allows it) or ``"response"`` (VTEX must accept what we send; nullability
    is not compared, because VTEX's descriptions and examples require ``null`` for fields its
    schema marks non-nullable, e.g. ``authorizationId`` or a failed operation's id).
    """
    v = _flatten(vtex, vtex_root)
    o = _flatten(ours, our_root)
    label = f"{where} {prop_path or '<body>'}"
    v_types, o_types = _base_types(v), _base_types(o)
    if v_types and o_types and prop_path not in allowed:
        compatible = (
            _accepts(o_types, v_types) if direction == "request" else _accepts(v_types, o_types)
        )
        if not compatible:
            problems.append(f"{label}: VTEX type {sorted(v_types)}, ours {sorted(o_types)}")
    if direction == "request" and _is_nullable(v) and not _is_nullable(o):
        problems.append(f"{label}: VTEX sends null here, ours is not nullable")
    if "enum" in v:
        v_enum = sorted(map(str, v["enum"]))
        o_enum = sorted(map(str, o.get("enum", [])))
        if v_enum != o_enum:
            problems.append(f"{label}: VTEX enum {v_enum}, ours {o_enum or 'none'}")
    our_properties = o.get("properties", {})
    for name, sub in v.get("properties", {}).items():
        child = f"{prop_path}.{name}" if prop_path else name
        if name not in our_properties:
            problems.append(f"{where} {child}: property missing from ours")
            continue
        _compare(
            sub,
            our_properties[name],
            vtex_root=vtex_root,
            our_root=our_root,
            direction=direction,
            where=where,
            problems=problems,
            allowed=allowed,
            prop_path=child,
        )
    if "items" in v:
        if "items" not in o:
            problems.append(f"{label}: VTEX has array items, ours has none")
            return
        _compare(
            v["items"],
            o["items"],
            vtex_root=vtex_root,
            our_root=our_root,
            direction=direction,
            where=where,
            problems=problems,
            allowed=allowed,
            prop_path=f"{prop_path}[]",
        )


def _schema_errors(schema: Any, instance: Any, root: dict[str, Any]) -> list[str]:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    validator = jsonschema_rs.Draft4Validator(walk.to_json_schema(schema, root))
    return [
        f"/{'/'.join(map(str, error.instance_path))}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def _media_examples(media: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        yield name, example["value"]


def _documented_media(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every media type object with a schema: request bodies and responses, inline or shared."""
    for path, method, operation in walk.operations(document):
        where = f"{method.upper()} {path}"
        body = operation.get("requestBody", {})
        if "$ref" not in body:
            for media_type, media in body.get("content", {}).items():
                yield f"{where} request {media_type}", media
        for status, response in operation.get("responses", {}).items():
            if "$ref" not in response:
                for media_type, media in response.get("content", {}).items():
                    yield f"{where} {status} {media_type}", media
    components = document.get("components", {})
    for kind in ("requestBodies", "responses"):
        for name, item in components.get(kind, {}).items():
            for media_type, media in item.get("content", {}).items():
                yield f"components/{kind}/{name} {media_type}", media


# --------------------------------------------------------------------------------------------
# The document itself


def test_openapi_yaml_is_a_valid_openapi_30_document(openapi: dict[str, Any]) -> None:
    assert str(openapi.get("openapi", "")).startswith("3.0."), "must stay OpenAPI 3.0.x"
    if importlib.util.find_spec("openapi_spec_validator") is not None:
        validator = importlib.import_module("openapi_spec_validator")
        validator.validate(openapi)
        return
    schemathesis = pytest.importorskip("schemathesis")
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    schema.validate()  # OpenAPI 3.0 meta-schema validation
    broken = [str(result.err()) for result in schema.get_all_operations() if hasattr(result, "err")]
    assert not broken, "operations schemathesis cannot load:\n" + "\n".join(broken)


def test_server_security_schemes_and_global_security(openapi: dict[str, Any]) -> None:
    assert openapi["servers"] == [
        {"url": "/payment-provider", "description": openapi["servers"][0].get("description")}
    ]
    schemes = openapi["components"]["securitySchemes"]
    expected_headers = {
        "VtexAppKey": "X-VTEX-API-AppKey",
        "VtexAppToken": "X-VTEX-API-AppToken",
        "ProviderAppKey": "X-PROVIDER-API-AppKey",
        "ProviderAppToken": "X-PROVIDER-API-AppToken",
    }
    for name, header in expected_headers.items():
        scheme = schemes[name]
        assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", header)
    assert openapi["security"] == [
        {"VtexAppKey": [], "VtexAppToken": []},
        {"ProviderAppKey": [], "ProviderAppToken": []},
    ]


def test_operation_ids_are_unique_and_expected(openapi: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in walk.operations(openapi)]
    assert len(ids) == len(set(ids)), f"duplicate operationIds: {ids}"
    assert set(ids) == {
        "getManifest",
        "listPaymentMethods",
        "createPayment",
        "settlePayment",
        "refundPayment",
        "cancelPayment",
        "cancelPaymentAlias",
        "inboundRequest",
        "inboundRequestAlias",
    }


def test_documented_statuses(openapi: dict[str, Any]) -> None:
    problems: list[str] = []
    for path, method, operation in walk.operations(openapi):
        where = f"{method.upper()} {path}"
        statuses = set(operation.get("responses", {}))
        if _is_public(operation):
            if operation.get("security") != []:
                problems.append(f"{where}: public operation must declare security: []")
            continue
        if "security" in operation:
            problems.append(f"{where}: authenticated operation must use the global security")
        required = {"401"}
        if method == "post":
            required |= {"400", "413", "500"}
        if path.startswith("/payments/{paymentId}/"):
            required.add("404")
        missing = sorted(required - statuses)
        if missing:
            problems.append(f"{where}: missing responses {missing}")
        header_names = {p["name"].lower() for p in walk.parameters(openapi, path, operation)}
        if TEST_SUITE_HEADER not in header_names:
            problems.append(f"{where}: X-VTEX-API-Is-TestSuite header is not documented")
    assert not problems, "\n".join(problems)


def test_test_suite_header_parameter(openapi: dict[str, Any]) -> None:
    for path, _, operation in walk.operations(openapi):
        for parameter in walk.parameters(openapi, path, operation):
            if parameter["name"].lower() == TEST_SUITE_HEADER:
                assert parameter["in"] == "header"
                assert parameter.get("required", False) is False
                assert parameter["schema"] == {"type": "string", "enum": ["true", "false"]}


def test_error_schema_is_vtex_fail_bad_request_shape(openapi: dict[str, Any]) -> None:
    error = openapi["components"]["schemas"]["Error"]
    assert error["type"] == "object"
    assert sorted(error["required"]) == ["code", "message", "status"]
    assert error["properties"]["status"]["enum"] == ["error"]
    assert error["properties"]["code"]["type"] == "string"
    assert error["properties"]["message"]["type"] == "string"


def test_cancellation_alias_has_the_same_definition(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    main = paths["/payments/{paymentId}/cancellations"]
    alias = paths["/payments/{paymentId}/cancelations"]
    assert main["parameters"] == alias["parameters"]
    for key in ("parameters", "requestBody", "responses", "tags", "security"):
        assert main["post"].get(key) == alias["post"].get(key), f"alias differs in {key}"


def test_links_point_to_existing_operations_and_parameters(openapi: dict[str, Any]) -> None:
    by_id = {
        operation["operationId"]: (path, operation)
        for path, _, operation in walk.operations(openapi)
    }
    found: set[tuple[str, str]] = set()
    problems: list[str] = []
    for _, _, operation in walk.operations(openapi):
        for status, response in operation.get("responses", {}).items():
            for name, link in walk.resolve(response, openapi).get("links", {}).items():
                source = f"{operation['operationId']} {status} link {name}"
                target = link.get("operationId")
                if target not in by_id:
                    problems.append(f"{source}: unknown operationId {target!r}")
                    continue
                found.add((operation["operationId"], target))
                path, target_operation = by_id[target]
                names = {p["name"] for p in walk.parameters(openapi, path, target_operation)}
                for parameter, expression in link.get("parameters", {}).items():
                    if parameter not in names:
                        problems.append(f"{source}: {target} has no parameter {parameter!r}")
                    if expression != "$response.body#/paymentId":
                        problems.append(f"{source}: unexpected expression {expression!r}")
    expected = {
        ("createPayment", "settlePayment"),
        ("createPayment", "refundPayment"),
        ("createPayment", "cancelPayment"),
        ("settlePayment", "refundPayment"),
    }
    missing = expected - found
    if missing:
        problems.append(f"missing links: {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_every_example_matches_its_schema(openapi: dict[str, Any]) -> None:
    problems: list[str] = []
    checked = 0
    for where, media in _documented_media(openapi):
        schema = media.get("schema")
        if schema is None:
            continue
        for name, example in _media_examples(media):
            checked += 1
            problems += [f"{where} [{name}] {e}" for e in _schema_errors(schema, example, openapi)]
    for path, _, operation in walk.operations(openapi):
        for parameter in walk.parameters(openapi, path, operation):
            if "example" in parameter:
                checked += 1
                errors = _schema_errors(parameter["schema"], parameter["example"], openapi)
                problems += [f"{path} parameter {parameter['name']}: {e}" for e in errors]
    assert checked > 20, f"only {checked} examples found"
    assert not problems, "\n".join(problems)


def test_test_suite_request_examples(openapi: dict[str, Any]) -> None:
    media = openapi["paths"]["/payments"]["post"]["requestBody"]["content"]["application/json"]
    examples = {name: example["value"] for name, example in media["examples"].items()}
    expected_cards = {
        "TestSuiteApproved": "4444333322221111",
        "TestSuiteDenied": "4444333322221112",
    }
    payment_ids: set[str] = set()
    for name, card_number in expected_cards.items():
        body = examples[name]
        assert body["card"]["number"] == card_number
        assert (body["paymentMethod"], body["value"], body["currency"]) == ("Visa", 31.9, "BRL")
        assert re.fullmatch(r"[0-9A-F]{32}", body["paymentId"]), body["paymentId"]
        payment_ids.add(body["paymentId"])
    assert len(payment_ids) == len(expected_cards), "each example needs its own paymentId"


# --------------------------------------------------------------------------------------------
# Agreement with VTEX's specification


@pytest.mark.parametrize(
    ("our_path", "vtex_path", "method"),
    SERVED_VTEX_OPERATIONS,
    ids=[f"{method.upper()} {path}" for path, _, method in SERVED_VTEX_OPERATIONS],
)
def test_agrees_with_vtex_spec(
    openapi: dict[str, Any],
    vtex_spec: dict[str, Any],
    our_path: str,
    vtex_path: str,
    method: str,
) -> None:
    """Every property of VTEX's request and response schemas exists in ours, same type and enum.

    Responses are compared for every status both documents describe (VTEX's 501 "do it manually"
    is not something this service answers).
    """
    vtex_operation = vtex_spec["paths"][vtex_path][method]
    our_operation = openapi["paths"][our_path][method]
    problems: list[str] = []
    where = f"{method.upper()} {our_path}"

    vtex_request = _request_schema(vtex_spec, vtex_operation)
    if vtex_request is not None:
        our_request = _request_schema(openapi, our_operation)
        if our_request is None:
            problems.append(f"{where} request: no JSON request body documented")
        else:
            _compare(
                vtex_request,
                our_request,
                vtex_root=vtex_spec,
                our_root=openapi,
                direction="request",
                where=f"{where} request",
                problems=problems,
                allowed={},
            )

    compared = 0
    for status in vtex_operation.get("responses", {}):
        vtex_response = _response_schema(vtex_spec, vtex_operation, status)
        if vtex_response is None or status not in our_operation.get("responses", {}):
            continue
        our_response = _response_schema(openapi, our_operation, status)
        if our_response is None:
            problems.append(f"{where} {status}: no JSON response schema documented")
            continue
        compared += 1
        allowed = {
            prop: why
            for (path, code, prop), why in KNOWN_RESPONSE_TYPE_DEVIATIONS.items()
            if path == vtex_path and code == status
        }
        _compare(
            vtex_response,
            our_response,
            vtex_root=vtex_spec,
            our_root=openapi,
            direction="response",
            where=f"{where} {status}",
            problems=problems,
            allowed=allowed,
        )
    if "200" not in our_operation.get("responses", {}):
        problems.append(f"{where}: 200 response not documented")
    assert compared, f"{where}: no response compared with VTEX's"
    assert not problems, f"{len(problems)} difference(s) with VTEX's spec:\n" + "\n".join(problems)


def test_vtex_request_examples_are_accepted(
    openapi: dict[str, Any], vtex_spec: dict[str, Any]
) -> None:
    """Our lenient request schemas accept every request example VTEX publishes."""
    problems: list[str] = []
    checked = 0
    for our_path, vtex_path, method in SERVED_VTEX_OPERATIONS:
        vtex_operation = vtex_spec["paths"][vtex_path][method]
        body = walk.resolve(vtex_operation.get("requestBody"), vtex_spec)
        if body is None:
            continue
        media = body["content"]["application/json"]
        samples = list(_media_examples(media))
        schema = walk.resolve(media.get("schema"), vtex_spec)
        if isinstance(schema, dict) and "example" in schema:
            samples.append(("schema example", schema["example"]))
        our_schema = _request_schema(openapi, openapi["paths"][our_path][method])
        for name, sample in samples:
            checked += 1
            errors = _schema_errors(our_schema, sample, openapi)
            problems += [f"{method.upper()} {our_path} [{name}] {e}" for e in errors]
    assert checked >= 10, f"only {checked} VTEX examples found"
    assert not problems, "\n".join(problems)
