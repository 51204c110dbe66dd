"""Excerpts of OpenAI's published OpenAPI 3.0 description, as test data.

Source: github.com/openai/openai-openapi, openapi.yaml, components.schemas: UsageResponse,
UsageTimeBucket, UsageEmbeddingsResult, CostsResult (descriptions dropped; the bucket's list of
results is `results`, as the API answers and OpenAI's SDKs read it). Only the variants this
gateway answers are kept in the bucket's `oneOf`.
"""

from __future__ import annotations

from typing import Any

NULLABLE_STRING = {"type": "string", "nullable": True}

USAGE_EMBEDDINGS_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["organization.usage.embeddings.result"]},
        "input_tokens": {"type": "integer"},
        "num_model_requests": {"type": "integer"},
        "project_id": NULLABLE_STRING,
        "user_id": NULLABLE_STRING,
        "api_key_id": NULLABLE_STRING,
        "model": NULLABLE_STRING,
    },
    "required": ["object", "input_tokens", "num_model_requests"],
}

COSTS_RESULT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "object": {"type": "string", "enum": ["organization.costs.result"]},
        "amount": {
            "type": "object",
            "properties": {"value": {"type": "number"}, "currency": {"type": "string"}},
        },
        "line_item": NULLABLE_STRING,
        "project_id": NULLABLE_STRING,
    },
    "required": ["object"],
}


def usage_response(result: dict[str, Any]) -> dict[str, Any]:
    bucket = {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["bucket"]},
            "start_time": {"type": "integer"},
            "end_time": {"type": "integer"},
            "results": {"type": "array", "items": {"oneOf": [result]}},
        },
        "required": ["object", "start_time", "end_time", "results"],
    }
    return {
        "type": "object",
        "properties": {
            "object": {"type": "string", "enum": ["page"]},
            "data": {"type": "array", "items": bucket},
            "has_more": {"type": "boolean"},
            "next_page": NULLABLE_STRING,
        },
        "required": ["object", "data", "has_more", "next_page"],
    }
