"""The admin API's part of /openapi.json (pure): /v1/organization/api_keys and its objects."""

from __future__ import annotations

from typing import Any

from gateway.admin.openapi_parts import Schema, errors, operation
from gateway.admin.openapi_parts import answer as _answer
from gateway.admin.openapi_parts import body as _body
from gateway.admin.openapi_parts import closed as _closed
from gateway.admin.openapi_parts import ref as _ref
from gateway.apikeys.requests import MAX_GRACE_SECONDS, MAX_PAGE, MAX_TEXT
from gateway.apikeys.views import OBJECT
from gateway.cache_control import CONTROLS as CACHE_CONTROLS

PATH = "/v1/organization/api_keys"

_STRING: Schema = {"type": "string"}
_TIME: Schema = {"type": "integer", "minimum": 0}
_OPTIONAL_TIME: Schema = {"type": ["integer", "null"], "minimum": 0}
_LIMIT: Schema = {"type": ["number", "null"], "minimum": 0}
_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": r"\S"}


LIMITS = _closed(
    dict.fromkeys(
        ("requests_per_second", "requests_burst", "tokens_per_minute", "tokens_burst"), _LIMIT
    ),
    [],
)
CONTROLS: Schema = {
    "type": "array",
    "items": {"enum": list(CACHE_CONTROLS)},
    "description": "Per-request cache controls the key may send (default: no-store)",
}
KEY_FIELDS: Schema = {
    "name": _NAME,
    "team": {"type": "string", "maxLength": MAX_TEXT},
    "models": {"type": "array", "items": _STRING},
    "limits": _ref("ApiKeyLimits"),
    "budget": {"anyOf": [_ref("Budget"), {"type": "null"}]},
    "cache_controls": CONTROLS,
}
API_KEY: Schema = {
    "object": {"const": OBJECT},
    "id": _STRING,
    "name": _STRING,
    "team": _STRING,
    "models": {"type": "array", "items": _STRING},
    "limits": _ref("ApiKeyLimits"),
    "cache_controls": CONTROLS,
    "redacted_value": _STRING,
    "created_at": _TIME,
    "last_used_at": _OPTIONAL_TIME,
    "source": {"enum": ["runtime", "config"]},
    "previous_value_expires_at": _OPTIONAL_TIME,
    "budget": {"anyOf": [_ref("BudgetShown"), {"type": "null"}]},
    "budget_usage": {"anyOf": [_ref("BudgetUsage"), {"type": "null"}]},
    "value": _STRING | {"description": "The secret: only in the answer to create and rotate."},
}

SCHEMAS: dict[str, Schema] = {
    "ApiKeyLimits": LIMITS,
    "ApiKey": _closed(API_KEY, [name for name in API_KEY if name != "value"]),
    "ApiKeyList": _closed(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("ApiKey")},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
        ["object", "data", "first_id", "last_id", "has_more"],
    ),
    "ApiKeyDeleted": _closed(
        {"object": {"const": f"{OBJECT}.deleted"}, "id": _STRING, "deleted": {"const": True}},
        ["object", "id", "deleted"],
    ),
    "ApiKeyCreate": _closed(KEY_FIELDS, ["name"]),
    "ApiKeyUpdate": _closed(KEY_FIELDS, []),
    "ApiKeyRotate": _closed(
        {"grace_seconds": {"type": "number", "minimum": 0, "maximum": MAX_GRACE_SECONDS}}, []
    ),
}

KEY_ID: Schema = {"name": "key_id", "in": "path", "required": True, "schema": _STRING}
PAGING: list[Schema] = [
    {"name": "after", "in": "query", "required": False, "schema": _STRING},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 20},
    },
]


KEY = _answer("The key (never its secret)", "ApiKey")
WITH_SECRET = _answer("The key, with its new secret in `value`, shown only this once", "ApiKey")


def _collection() -> Schema:
    return {
        "post": _operation(
            "createApiKey",
            "Create a key",
            ("201", WITH_SECRET),
            (400, 401, 503),
            requestBody=_body("ApiKeyCreate"),
        ),
        "get": _operation(
            "listApiKeys",
            "List keys (config keys first), oldest first",
            ("200", _answer("One page of keys", "ApiKeyList")),
            (400, 401, 503),
            parameters=PAGING,
        ),
    }


def _one_key() -> Schema:
    return {
        "get": _operation(
            "getApiKey", "One key", ("200", KEY), (401, 404, 503), parameters=[KEY_ID]
        ),
        "post": _operation(
            "updateApiKey",
            "Change a key's name, team, models or limits",
            ("200", KEY),
            (400, 401, 404, 503),
            requestBody=_body("ApiKeyUpdate"),
            parameters=[KEY_ID],
        ),
        "delete": _operation(
            "revokeApiKey",
            "Revoke a key: refused everywhere within a second",
            ("200", _answer("Revoked", "ApiKeyDeleted")),
            (400, 401, 404, 503),
            parameters=[KEY_ID],
        ),
    }


def paths() -> Schema:
    rotate = _operation(
        "rotateApiKey",
        "A new secret; the old one works for grace_seconds more",
        ("200", WITH_SECRET),
        (400, 401, 404, 503),
        requestBody=_body("ApiKeyRotate", required=False),
        parameters=[KEY_ID],
    )
    return {
        PATH: _collection(),
        PATH + "/{key_id}": _one_key(),
        PATH + "/{key_id}/rotate": {"post": rotate},
    }


def _operation(
    operation_id: str, summary: str, ok: tuple[str, Schema], failures: tuple[int, ...], **extra: Any
) -> Schema:
    return operation(operation_id, summary, {ok[0]: ok[1]} | errors(*failures), **extra)
