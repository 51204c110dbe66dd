"""The pieces every organization API's part of /openapi.json is made of (pure)."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
JSON = "application/json"
# The internal token (or, where a route says so, a key), in either header.
ADMIN_ONLY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def closed(properties: Schema, required: list[str] | None = None) -> Schema:
    """An object with exactly these properties; all of them required unless `required` says."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        "additionalProperties": False,
    }


def errors(*statuses: int) -> Schema:
    return {str(status): ref(f"Error{status}", "responses") for status in statuses}


def answer(description: str, schema: str) -> Schema:
    """A JSON answer carrying the request id header."""
    return {
        "description": description,
        "headers": {"x-request-id": ref("RequestId", "headers")},
        "content": {JSON: {"schema": ref(schema)}},
    }


def operation(
    operation_id: str, summary: str, responses: Schema, *, security: Any = None, **extra: Any
) -> Schema:
    return {
        "operationId": operation_id,
        "summary": summary,
        "security": ADMIN_ONLY if security is None else security,
        "responses": responses,
        **extra,
    }


def body(schema: str, *, required: bool = True) -> Schema:
    return {"required": required, "content": {JSON: {"schema": ref(schema)}}}
