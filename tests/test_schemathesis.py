"""Fuzzing the live gateway from its own /openapi.json: no 5xx, every error in OpenAI's envelope,
every response as documented. The fake upstream is healthy, so 502/503/504 would be bugs too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeAlias

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.stack import Stack, own_stack

Case: TypeAlias = schemathesis.Case[Any]
UNLIMITED = {
    "limits": {
        "per_ip": {"requests_per_second": 0, "requests_burst": 0},
        "per_key": {"requests_per_second": 0, "requests_burst": 0, "tokens_per_minute": 0},
    }
}
ENVELOPE_KEYS = ["message", "type", "param", "code"]


@pytest.fixture(scope="module")
def live() -> Iterator[Stack]:
    with own_stack("", UNLIMITED) as stack:
        yield stack


@pytest.fixture(scope="module")
def api(live: Stack) -> schemathesis.BaseSchema:
    """The document as published: ``model`` is any string, so most bodies end in a 404."""
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json")


@pytest.fixture(scope="module")
def catalog_api(live: Stack) -> schemathesis.BaseSchema:
    """The same document with ``model`` narrowed to the catalog, to fuzz past the model lookup."""
    document = httpx.get(f"{live.url}/openapi.json", timeout=10).json()
    model = document["components"]["schemas"]["EmbeddingRequest"]["properties"]["model"]
    model["enum"] = model.pop("examples")
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=live.url)
    return schema


def errors_use_the_envelope(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: Case
) -> bool | None:
    if response.status_code < 400 or case.path == "/readyz":
        return None
    body = response.json()
    assert isinstance(body, dict) and list(body) == ["error"], body
    assert list(body["error"]) == ENVELOPE_KEYS, body
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    errors_use_the_envelope,
]

BOUNDED = settings(
    max_examples=50,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
published = schemathesis.pytest.from_fixture("api")
narrowed = schemathesis.pytest.from_fixture("catalog_api").include(method="POST")


@published.parametrize()
@BOUNDED
def test_every_operation_answers_as_documented(case: Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=10)


@narrowed.parametrize()
@BOUNDED
def test_embeddings_of_catalog_models_answer_as_documented(case: Case) -> None:
    case.call_and_validate(checks=CHECKS, timeout=10)


def test_an_undeclared_method_gets_405_naming_the_allowed_ones(live: Stack) -> None:
    response = httpx.request("TRACE", f"{live.url}/v1/embeddings", timeout=10)
    assert response.status_code == 405
    assert response.headers.get("allow") == "POST"
