"""The cache administration's part of /openapi.json (pure)."""

from __future__ import annotations

from typing import Any

from gateway.admin.cache_requests import MAX_SCOPES, OBJECT
from gateway.admin.openapi_parts import JSON, Schema, errors, operation
from gateway.admin.openapi_parts import answer as _answer
from gateway.admin.openapi_parts import closed as _closed
from gateway.admin.openapi_parts import ref as _ref
from gateway.cache_control import TTL_HEADER

PATH = "/v1/organization/cache"

_COUNT: Schema = {"type": "integer", "minimum": 0}
_STRING: Schema = {"type": "string"}


SCHEMAS: dict[str, Schema] = {
    "CacheModel": _closed(
        {
            "object": {"const": OBJECT},
            "id": _STRING,
            "model": _STRING,
            "entries": _COUNT,
            "bytes": _COUNT,
            "estimated": {"type": "boolean", "description": "sampled (Redis), not counted"},
            "oldest_entry_age_seconds": {"type": ["integer", "null"], "minimum": 0},
            "hits": _COUNT,
            "misses": _COUNT,
            "hit_ratio": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        }
    ),
    "CacheModelList": _closed(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("CacheModel")},
            "first_id": {"type": ["string", "null"]},
            "last_id": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        }
    ),
    "CacheModelDeleted": _closed(
        {
            "object": {"const": f"{OBJECT}.deleted"},
            "id": _STRING,
            "deleted": {"const": True},
            "generation": _COUNT,
        }
    ),
    "CacheDelete": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": _STRING,
            "input": _ref("EmbeddingRequest/properties/input"),
            "dimensions": {"type": ["integer", "null"], "minimum": 1},
            "scopes": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SCOPES,
                "items": {"type": "string", "pattern": r"^(shared|(team|key):\S{1,200})$"},
                "default": ["shared"],
            },
        },
        "additionalProperties": True,
    },
    "CacheDeletion": _closed(
        {
            "object": {"const": "organization.cache.deletion"},
            "model": _STRING,
            "inputs": _COUNT,
            "scopes": {"type": "array", "items": _STRING},
            "deleted": _COUNT,
        }
    ),
}

# Request headers of POST /v1/embeddings, used as the key's cache_controls allow.
CONTROL_PARAMETERS: list[Schema] = [
    {
        "name": "Cache-Control",
        "in": "header",
        "required": False,
        "description": "no-cache: refresh every input (x-cache: REFRESH); no-store: write nothing",
        "schema": _STRING,
    },
    {
        "name": TTL_HEADER,
        "in": "header",
        "required": False,
        "description": "Seconds what this request writes lives, up to cache.ttl_seconds",
        "schema": _STRING | {"pattern": "^[0-9]+$"},
    },
]


def paths() -> Schema:
    model = {"name": "model", "in": "path", "required": True, "schema": _STRING}
    body = {"required": True, "content": {JSON: {"schema": _ref("CacheDelete")}}}
    return {
        PATH: {
            "get": _operation(
                "listCache",
                "What the cache holds per model, and its hits and misses since start",
                _answer("One object per model", "CacheModelList"),
                (401, 503),
            )
        },
        f"{PATH}/models/{{model}}": {
            "delete": _operation(
                "purgeCacheModel",
                "Make every cached vector of a model unreachable, on every instance at once",
                _answer("The model's new generation", "CacheModelDeleted"),
                (401, 404, 503),
                parameters=[model],
            )
        },
        f"{PATH}/delete": {
            "post": _operation(
                "deleteCacheInputs",
                "Forget the given inputs of a model in every scope named",
                _answer("How many entries were deleted", "CacheDeletion"),
                (400, 401, 404, 503),
                requestBody=body,
            )
        },
    }


def _operation(
    operation_id: str, summary: str, ok: Schema, failures: tuple[int, ...], **extra: Any
) -> Schema:
    return operation(operation_id, summary, {"200": ok} | errors(*failures), **extra)
