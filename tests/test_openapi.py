"""The OpenAPI document: valid OpenAPI 3.1, in step with the routes, true to the bodies."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_document

from gateway import protocol
from gateway.app import build_app
from gateway.catalog import Catalog
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, RateLimited
from gateway.openapi import document
from gateway.usage import FIELDS
from tests.support.background import BackgroundLoop
from tests.support.stack import Stack, shipped_settings

# Prometheus text for scrapers, and the dashboard's HTML and files for browsers: not API calls
UNDOCUMENTED = {"/metrics", "/dashboard", "/dashboard/{asset}"}
SETTINGS = shipped_settings("http://127.0.0.1:9/v1", "")
CATALOG = Catalog.from_settings(SETTINGS.models)
DOC = document(CATALOG, auth_required=False)


def violations(instance: Any, schema_name: str) -> list[str]:
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": DOC["components"]}
    return [error.message for error in OAS31Validator(schema).iter_errors(instance)]


def app_operations() -> set[tuple[str, str]]:
    app = build_app(SETTINGS)
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method not in ("HEAD", "OPTIONS")
        and route.resource is not None
        and route.resource.canonical not in UNDOCUMENTED
    }


def documented_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in DOC["paths"].items() for method in item}


@pytest.mark.parametrize("auth_required", [False, True])
def test_document_is_valid_openapi_3_1(auth_required: bool) -> None:
    validate_document(document(CATALOG, auth_required=auth_required))


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    assert app_operations() == documented_operations()


def test_gateway_serves_the_document_for_its_config(background: BackgroundLoop) -> None:
    stack = Stack(background, "")
    try:
        response = httpx.get(f"{stack.url}/openapi.json", timeout=10)
    finally:
        stack.close()
    assert response.status_code == 200
    assert response.json() == document(
        Catalog.from_settings(stack.settings.models), auth_required=False
    )


def test_credentials_are_optional_only_while_auth_is_off() -> None:
    def security(auth_required: bool) -> list[dict[str, list[str]]]:
        paths = document(CATALOG, auth_required=auth_required)["paths"]
        result: list[dict[str, list[str]]] = paths["/v1/embeddings"]["post"]["security"]
        return result

    assert {} in security(False)
    assert {} not in security(True)


def test_model_field_offers_every_catalog_model_as_an_example() -> None:
    model = DOC["components"]["schemas"]["EmbeddingRequest"]["properties"]["model"]
    assert model["examples"] == [m.name for m in CATALOG]


def test_usage_rows_name_every_usage_counter() -> None:
    row = DOC["components"]["schemas"]["UsageRow"]
    assert set(row["required"]) == {"model", *FIELDS, "cost_usd", "saved_usd"}


@pytest.mark.parametrize(
    "error",
    [InvalidRequest("bad", param="input"), ModelNotFound("nope"), RateLimited("slow down")],
)
def test_error_schema_accepts_what_the_error_tree_renders(error: GatewayError) -> None:
    assert violations(error.envelope(), "Error") == []


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_response_schema_accepts_both_encodings(encoding_format: protocol.EncodingFormat) -> None:
    vector = b"\x00\x00\x80\x3f" * 4  # float32 1.0, four times
    body = protocol.embedding_response("m", [vector], 4, encoding_format, prompt_tokens=3)
    assert violations(orjson.loads(body), "EmbeddingResponse") == []


def test_error_schema_rejects_an_envelope_without_code() -> None:
    envelope = {"error": {"message": "m", "type": "t", "param": None}}
    assert violations(envelope, "Error") == ["'code' is a required property"]
