"""The gateway's own API as an OpenAPI 3.1 document, built from the model catalog (pure).

Served at ``GET /openapi.json``. The schemas describe what the gateway really accepts and
answers, and tests fuzz the live gateway against them. So where the gateway is looser than
OpenAI's spec, so is this document: unknown request keys are ignored, and ``null`` for an
optional field means the field is absent.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.admin import cache_schema, spend_schema
from gateway.admin import schema as admin_schema
from gateway.catalog import Catalog
from gateway.protocol import MAX_INPUTS
from gateway.tokens import MAX_TOKEN_ID

JSON = "application/json"
PREFIXES = {"/v1": "", "/api/v1": "NanoGPT"}  # OpenAI's paths and NanoGPT's: operationId suffix
EMBEDDING_ERRORS = (400, 401, 403, 404, 413, 429, 502, 503, 504)
AT_CAPACITY = 503  # admission control answers it on every route but /healthz and /readyz
USAGE_COUNTERS = ("requests", "inputs", "cached_inputs", "tokens", "billed_tokens")

Schema = dict[str, Any]


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """A closed object: every property is required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def _array(items: Schema, max_items: int | None = None) -> Schema:
    schema: Schema = {"type": "array", "minItems": 1, "items": items}
    return schema if max_items is None else schema | {"maxItems": max_items}


def _list_of(item: str) -> Schema:
    return _object({"object": {"const": "list"}, "data": {"type": "array", "items": _ref(item)}})


STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
COUNT: Schema = {"type": "integer", "minimum": 0}
TEXT: Schema = {"type": "string", "minLength": 1}
TOKENS: Schema = _array({"type": "integer", "minimum": 0, "maximum": MAX_TOKEN_ID})

INPUT: Schema = {
    "description": "One text, a batch of texts, one cl100k token array, or a batch of them.",
    "anyOf": [TEXT, _array(TEXT, MAX_INPUTS), TOKENS, _array(TOKENS, MAX_INPUTS)],
}

VECTOR: Schema = {
    "description": "Floats, or base64 of the little-endian float32 bytes.",
    "anyOf": [
        {"type": "array", "items": NUMBER},
        STRING | {"contentEncoding": "base64"},
    ],
}

MODEL: Schema = {"id": STRING, "object": {"const": "model"}, "created": COUNT, "owned_by": STRING}

MODEL_DETAILS: Schema = {
    "name": STRING,
    "description": STRING,
    "dimensions": {"type": "integer", "minimum": 1},
    "supports_dimensions": {"type": "boolean"},
    "max_tokens": COUNT,
    "pricing": _object({"per_million_tokens": NUMBER, "currency": STRING}),
}

USAGE_ROW: Schema = (
    {"model": STRING}
    | dict.fromkeys(USAGE_COUNTERS, COUNT)
    | dict.fromkeys(("cost_usd", "saved_usd"), NUMBER)
)

ROWS: Schema = {"models": {"type": "array", "items": _ref("UsageRow")}}

SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "message": STRING,
                    "type": STRING,
                    "param": {"type": ["string", "null"]},
                    "code": {"type": ["string", "null"]},
                }
            )
        }
    ),
    "Embedding": _object({"object": {"const": "embedding"}, "index": COUNT, "embedding": VECTOR}),
    "EmbeddingResponse": _object(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Embedding")},
            "model": STRING,
            "usage": _object({"prompt_tokens": COUNT, "total_tokens": COUNT}),
        }
    ),
    "Model": _object(MODEL),
    "ModelList": _list_of("Model"),
    "EmbeddingModel": _object(MODEL | MODEL_DETAILS),
    "EmbeddingModelList": _list_of("EmbeddingModel"),
    "UsageRow": _object(USAGE_ROW),
    "UsageKey": _object({"key": STRING, "key_id": STRING, "team": STRING} | ROWS),
    "UsageTeam": _object({"team": STRING} | ROWS),
    "UsageReport": _object(
        {
            "object": {"const": "usage"},
            "keys": {"type": "array", "items": _ref("UsageKey")},
            "teams": {"type": "array", "items": _ref("UsageTeam")},
        },
        optional=("teams",),
    ),
    "Health": _object({"status": {"const": "ok"}}),
    "Readiness": _object({"status": {"enum": ["ready", "unavailable"]}, "cache": STRING}),
}

HEADERS: dict[str, Schema] = {
    "RequestId": {"required": True, "schema": STRING | {"pattern": "^req_[0-9a-f]{32}$"}},
    "Cache": {"required": True, "schema": {"enum": ["HIT", "MISS", "PARTIAL", "REFRESH"]}},
    "CacheHits": {"required": True, "schema": STRING | {"pattern": "^[0-9]+/[0-9]+$"}},
    "ShouldRetry": {"schema": {"enum": ["true", "false"]}},
    "BudgetRemaining": {
        "description": "A budgeted key only: USD left of its tighter budget (key or team).",
        "schema": STRING | {"pattern": r"^[0-9]+(\.[0-9]+)?$"},
    },
    "BudgetReset": {
        "description": "A budgeted key only: when that budget's period ends (RFC 3339, UTC).",
        "schema": STRING | {"format": "date-time"},
    },
    "RetryAfter": {"description": "Seconds to wait.", "schema": STRING},
}

MODEL_ID: Schema = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "The model id, slashes included (not percent-encoded)",
    "schema": TEXT,
}

SECURITY_SCHEMES: dict[str, Schema] = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer KEY"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}


def _request_schema(model_names: list[str]) -> Schema:
    return {
        "type": "object",
        "required": ["input", "model"],
        "properties": {
            "input": INPUT,
            "model": TEXT | {"examples": model_names},
            "encoding_format": _nullable({"enum": ["float", "base64"], "default": "float"}),
            "dimensions": _nullable({"type": "integer", "minimum": 1}),
            "user": _nullable(STRING),
        },
        "additionalProperties": True,
    }


def _error_response(status: int) -> Schema:
    headers = {
        "x-request-id": _ref("RequestId", "headers"),
        "x-should-retry": _ref("ShouldRetry", "headers"),
    }
    if status == 429:
        headers["retry-after"] = _ref("RetryAfter", "headers")
    return {
        "description": f"{status}: OpenAI's error envelope",
        "headers": headers,
        "content": {JSON: {"schema": _ref("Error")}},
    }


def _answer(description: str, schema: Schema, headers: dict[str, Schema] | None = None) -> Schema:
    every = {"x-request-id": _ref("RequestId", "headers")} | (headers or {})
    return {"description": description, "headers": every, "content": {JSON: {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Schema]:
    return {str(status): _ref(f"Error{status}", "responses") for status in statuses}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Schema],
    security: list[dict[str, list[str]]] | None = None,
    body: str | None = None,
    *,
    parameters: list[Schema] | None = None,
) -> Schema:
    operation: Schema = {"operationId": operation_id, "summary": summary, "responses": responses}
    if parameters is not None:
        operation["parameters"] = parameters
    if security is not None:
        operation["security"] = security
    if body is not None:
        content = {JSON: {"schema": _ref(body)}}
        operation["requestBody"] = {"required": True, "content": content}
    return operation


def _api_paths(prefix: str, suffix: str, security: list[dict[str, list[str]]]) -> Schema:
    # A key is optional for the model list: without one, the public list.
    listing = security if {} in security else [*security, {}]
    cache = {
        "x-cache": _ref("Cache", "headers"),
        "x-cache-hits": _ref("CacheHits", "headers"),
        "x-gateway-budget-remaining-usd": _ref("BudgetRemaining", "headers"),
        "x-gateway-budget-reset": _ref("BudgetReset", "headers"),
    }
    embedded = _answer("The vectors, in input order", _ref("EmbeddingResponse"), cache)
    return {
        f"{prefix}/embeddings": {
            "post": _operation(
                f"createEmbedding{suffix}",
                "Embed the inputs, serving each from the cache when it can",
                {"200": embedded} | _errors(*EMBEDDING_ERRORS),
                security,
                body="EmbeddingRequest",
            )
            | {"parameters": cache_schema.CONTROL_PARAMETERS}
        },
        f"{prefix}/models": {
            "get": _operation(
                f"listModels{suffix}",
                "OpenAI's model list",
                {"200": _answer("The models the caller may use", _ref("ModelList"))}
                | _errors(401, AT_CAPACITY),
                listing,
            )
        },
        f"{prefix}/models/{{model}}": {
            "get": _operation(
                f"retrieveModel{suffix}",
                "One model, by id (ids may hold slashes: BAAI/bge-m3)",
                {"200": _answer("The model", _ref("Model"))} | _errors(401, 404, AT_CAPACITY),
                listing,
                parameters=[MODEL_ID],
            )
        },
        f"{prefix}/embedding-models": {
            "get": _operation(
                f"listEmbeddingModels{suffix}",
                "NanoGPT's model list: dimensions, max tokens, pricing",
                {"200": _answer("The models the caller may use", _ref("EmbeddingModelList"))}
                | _errors(401, AT_CAPACITY),
                listing,
            )
        },
        f"{prefix}/usage": {
            "get": _operation(
                f"getUsage{suffix}",
                "Usage and cost per key (all keys and teams for the internal token)",
                {"200": _answer("The report", _ref("UsageReport"))} | _errors(401, AT_CAPACITY),
                security,
            )
        },
    }


def _service_paths() -> Schema:
    ready = _ref("Readiness")
    return {
        "/healthz": {
            "get": _operation(
                "healthz", "The process is up", {"200": _answer("Up", _ref("Health"))}
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "The cache backend answers",
                {"200": _answer("Ready", ready), "503": _answer("The cache is unreachable", ready)},
            )
        },
        "/openapi.json": {
            "get": _operation(
                "openapi",
                "This document",
                {"200": _answer("OpenAPI 3.1", {"type": "object"})} | _errors(AT_CAPACITY),
            )
        },
    }


def document(catalog: Catalog, *, auth_required: bool) -> Schema:
    """The whole document; without API keys configured, credentials are optional."""
    security: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
    if not auth_required:
        security.append({})
    paths = _service_paths() | cache_schema.paths()
    for prefix, suffix in PREFIXES.items():
        paths |= _api_paths(prefix, suffix, security)
    paths |= admin_schema.paths() | spend_schema.paths()
    request = _request_schema([m.name for m in catalog])
    components = {
        "schemas": SCHEMAS
        | admin_schema.SCHEMAS
        | spend_schema.SCHEMAS
        | cache_schema.SCHEMAS
        | {"EmbeddingRequest": request},
        "responses": {f"Error{status}": _error_response(status) for status in EMBEDDING_ERRORS},
        "headers": HEADERS,
        "securitySchemes": SECURITY_SCHEMES,
    }
    info = {
        "title": "embedding-gateway",
        "version": "1.0.0",
        "summary": "An OpenAI-compatible embeddings gateway",
    }
    return copy.deepcopy(
        {"openapi": "3.1.0", "info": info, "paths": paths, "components": components}
    )
