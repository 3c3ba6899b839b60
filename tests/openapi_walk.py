"""Walking an OpenAPI document read as plain data: references, operations, parameters. Shared by
the static checks of `openapi.yaml` and of `protocol/acquirer-api.yaml`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def lookup(root: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are supported, got {ref!r}"
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(node: Any, root: dict[str, Any]) -> Any:
    """Follow ``$ref`` chains until a node without ``$ref``."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"circular reference {ref!r}"
        seen.add(ref)
        node = lookup(root, ref)
    return node


def operations(root: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(path, method, operation) for every operation."""
    for path, item in root["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


def parameters(root: dict[str, Any], path: str, operation: dict[str, Any]) -> list[Any]:
    """An operation's parameters, its path's included, resolved."""
    path_level = root["paths"][path].get("parameters", [])
    return [resolve(p, root) for p in [*path_level, *operation.get("parameters", [])]]


# Keywords of OpenAPI 3.0 schemas that JSON Schema does not have.
OPENAPI_ONLY_KEYWORDS = frozenset(
    {
        "nullable",
        "example",
        "discriminator",
        "readOnly",
        "writeOnly",
        "xml",
        "externalDocs",
        "deprecated",
    }
)


def to_json_schema(node: Any, root: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema as plain JSON Schema (references inlined, nullable -> null)."""
    if isinstance(node, list):
        return [to_json_schema(item, root) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(lookup(root, node["$ref"]), root)
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in OPENAPI_ONLY_KEYWORDS:
            continue
        if key == "properties":
            converted[key] = {name: to_json_schema(sub, root) for name, sub in value.items()}
        else:
            converted[key] = to_json_schema(value, root)
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
