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
