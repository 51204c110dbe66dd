"""Bad input gets OpenAI's error envelope, status and wording; never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.errors import InvalidRequest
from tests.support.stack import Stack, own_stack

SMALL = "text-embedding-3-small"
INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Stack]:
    with own_stack() as stack:
        yield stack


def error_of(gateway: Stack, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    url = f"{gateway.base_url}/embeddings"
    response = (
        httpx.post(url, content=raw, timeout=10)
        if raw is not None
        else httpx.post(url, json=body, timeout=10)
    )
    envelope = response.json()
    assert list(envelope) == ["error"]
    assert list(envelope["error"]) == ["message", "type", "param", "code"]
    return response.status_code, envelope["error"]


CASES: list[tuple[str, Any, int, str]] = [
    ("missing model", {"input": "x"}, 400, "you must provide a model parameter"),
    ("empty model", {"model": "", "input": "x"}, 400, "you must provide a model parameter"),
    ("model not a string", {"model": 5, "input": "x"}, 400, "5 is not of type 'string' - 'model'"),
    ("missing input", {"model": SMALL}, 400, "Missing required parameter: 'input'."),
    (
        "empty string",
        {"model": SMALL, "input": ""},
        400,
        "Invalid 'input': input cannot be an empty string.",
    ),
    (
        "empty string in a list",
        {"model": SMALL, "input": ["a", ""]},
        400,
        "Invalid 'input': input cannot be an empty string.",
    ),
    (
        "empty array",
        {"model": SMALL, "input": []},
        400,
        "Invalid 'input': input cannot be an empty array.",
    ),
    (
        "2049 inputs",
        {"model": SMALL, "input": ["a"] * 2049},
        400,
        "Invalid 'input': array length must be 2048 or less.",
    ),
    ("mixed types", {"model": SMALL, "input": [123, "foo"]}, 400, INVALID_INPUT),
    ("a boolean", {"model": SMALL, "input": True}, 400, INVALID_INPUT),
    ("empty token array", {"model": SMALL, "input": [[]]}, 400, INVALID_INPUT),
    ("float tokens", {"model": SMALL, "input": [[1.5]]}, 400, INVALID_INPUT),
    ("a boolean among tokens", {"model": SMALL, "input": [1, True]}, 400, INVALID_INPUT),
    (
        "negative token",
        {"model": SMALL, "input": [-123]},
        400,
        "Invalid token in prompt: -123. Minimum value is 0, maximum value is 100257 (inclusive).",
    ),
    (
        "token too large",
        {"model": SMALL, "input": [[5, 100258]]},
        400,
        "Invalid token in prompt: 100258. Minimum value is 0, maximum value is 100257 (inclusive).",
    ),
    (
        "dimensions zero",
        {"model": SMALL, "input": "x", "dimensions": 0},
        400,
        "0 is less than the minimum of 1 - 'dimensions'",
    ),
    (
        "dimensions string",
        {"model": SMALL, "input": "x", "dimensions": "123"},
        400,
        "'123' is not of type 'integer' - 'dimensions'",
    ),
    (
        "dimensions too large",
        {"model": SMALL, "input": "x", "dimensions": 1537},
        400,
        "Invalid 'dimensions': 1537. Must be less than or equal to 1536.",
    ),
    (
        "dimensions on ada",
        {"model": "text-embedding-ada-002", "input": "x", "dimensions": 1536},
        400,
        "This model does not support specifying dimensions.",
    ),
    (
        "bad encoding",
        {"model": SMALL, "input": "x", "encoding_format": "unknown"},
        400,
        "Invalid value for 'encoding_format' = unknown. Supported values: ['float', 'base64'].",
    ),
    (
        "user not a string",
        {"model": SMALL, "input": "x", "user": 123},
        400,
        "123 is not of type 'string' - 'user'",
    ),
    (
        "unknown model",
        {"model": "foo", "input": "x"},
        404,
        "The model `foo` does not exist or you do not have access to it.",
    ),
    ("body is an array", ["x"], 400, "Invalid request body: expected a JSON object."),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_requests_get_openai_errors(
    gateway: Stack, case: str, body: Any, status: int, message: str
) -> None:
    got_status, error = error_of(gateway, body)
    assert (got_status, error["message"]) == (status, message)


def _recorded(message: str, code: str | None = None) -> dict[str, str | None]:
    return {"message": message, "type": "invalid_request_error", "param": None, "code": code}


# Whole error objects as api.openai.com answered them (the contract's section 1.4, recorded rows).
RECORDED: list[tuple[str, Any, int, dict[str, str | None]]] = [
    ("mixed types", {"model": SMALL, "input": [123, "foo"]}, 400, _recorded(INVALID_INPUT)),
    ("a boolean", {"model": SMALL, "input": True}, 400, _recorded(INVALID_INPUT)),
    (
        "negative token",
        {"model": SMALL, "input": [-123]},
        400,
        _recorded(
            "Invalid token in prompt: -123. Minimum value is 0, maximum value is 100257 "
            "(inclusive)."
        ),
    ),
    (
        "dimensions zero",
        {"model": SMALL, "input": "x", "dimensions": 0},
        400,
        _recorded("0 is less than the minimum of 1 - 'dimensions'"),
    ),
    (
        "dimensions string",
        {"model": SMALL, "input": "x", "dimensions": "123"},
        400,
        _recorded("'123' is not of type 'integer' - 'dimensions'"),
    ),
    (
        "dimensions on ada",
        {"model": "text-embedding-ada-002", "input": "x", "dimensions": 1536},
        400,
        _recorded("This model does not support specifying dimensions."),
    ),
    (
        "bad encoding",
        {"model": SMALL, "input": "x", "encoding_format": "unknown"},
        400,
        _recorded(
            "Invalid value for 'encoding_format' = unknown. Supported values: ['float', 'base64']."
        ),
    ),
    (
        "empty encoding",
        {"model": SMALL, "input": "x", "encoding_format": ""},
        400,
        _recorded("Invalid value for 'encoding_format' = . Supported values: ['float', 'base64']."),
    ),
    (
        "user not a string",
        {"model": SMALL, "input": "x", "user": 123},
        400,
        _recorded("123 is not of type 'string' - 'user'"),
    ),
    (
        "empty model",
        {"model": "", "input": "x"},
        400,
        _recorded("you must provide a model parameter"),
    ),
    ("missing model", {"input": "x"}, 400, _recorded("you must provide a model parameter")),
    (
        "unknown model",
        {"model": "foo", "input": "x"},
        404,
        _recorded(
            "The model `foo` does not exist or you do not have access to it.", "model_not_found"
        ),
    ),
    (
        "unknown model, no input",
        {"model": "foo"},
        404,
        _recorded(
            "The model `foo` does not exist or you do not have access to it.", "model_not_found"
        ),
    ),
    (
        "an input over 8192 tokens",
        {"model": SMALL, "input": [[1], [1] * 8193]},
        400,
        _recorded("Invalid 'input[1]': maximum input length is 8192 tokens."),
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "status", "recorded"), RECORDED, ids=[c[0] for c in RECORDED]
)
def test_errors_match_openais_recorded_bodies(
    gateway: Stack, case: str, body: Any, status: int, recorded: dict[str, str | None]
) -> None:
    assert error_of(gateway, body) == (status, recorded)


def test_a_body_that_is_not_json_is_a_400(gateway: Stack) -> None:
    status, error = error_of(gateway, None, raw=b"{not json")
    assert status == 400
    assert error["type"] == "invalid_request_error"


def test_invalid_utf8_is_a_400(gateway: Stack) -> None:
    status, _ = error_of(gateway, None, raw=b'{"model":"text-embedding-3-small","input":"\xff"}')
    assert status == 400


def test_too_many_tokens_in_one_request_gets_max_tokens_per_request(gateway: Stack) -> None:
    body = {"model": SMALL, "input": [[1] * 8000] * 40}
    status, error = error_of(gateway, body)
    assert status == 400
    assert error["message"] == "Requested 320000 tokens, max 300000 tokens per request"
    assert error["type"] == error["code"] == "max_tokens_per_request"


@pytest.mark.parametrize("model", [SMALL, "text-embedding-3-large", "text-embedding-ada-002"])
def test_openai_models_take_8192_tokens_an_input(gateway: Stack, model: str) -> None:
    body = {"model": model, "input": [[1], [1] * 8192], "encoding_format": "base64"}
    assert httpx.post(f"{gateway.base_url}/embeddings", json=body, timeout=10).status_code == 200


@pytest.mark.parametrize("model", [SMALL, "text-embedding-3-large", "text-embedding-ada-002"])
def test_an_item_over_the_limit_is_named_by_its_index(gateway: Stack, model: str) -> None:
    _, error = error_of(gateway, {"model": model, "input": [[1], [1] * 8193]})
    assert error["message"] == "Invalid 'input[1]': maximum input length is 8192 tokens."


def test_an_unknown_route_is_a_404_envelope(gateway: Stack) -> None:
    response = httpx.get(f"{gateway.url}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_url"


def test_a_wrong_method_is_a_405_envelope(gateway: Stack) -> None:
    response = httpx.get(f"{gateway.base_url}/embeddings")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_exactly_2048_inputs_are_accepted(gateway: Stack) -> None:
    body = {"model": SMALL, "input": [f"t{i}" for i in range(2048)], "encoding_format": "base64"}
    response = httpx.post(f"{gateway.base_url}/embeddings", json=body, timeout=30)
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2048


def test_unknown_extra_keys_are_ignored(gateway: Stack) -> None:
    body = {"model": SMALL, "input": "x", "something_else": {"nested": True}}
    assert httpx.post(f"{gateway.base_url}/embeddings", json=body).status_code == 200


@pytest.mark.parametrize(
    "message", ['quote " and \\ back', "controls \x00\x1f\x7f\t\n\r\b\f", "é 中文 😀 \u2028"]
)
def test_error_bodies_are_pretty_printed_as_openai_prints_them(message: str) -> None:
    error = InvalidRequest(message, param="input", code="x")
    pretty = json.dumps(error.envelope(), indent=2, ensure_ascii=False) + "\n"
    assert error.body() == pretty.encode()
