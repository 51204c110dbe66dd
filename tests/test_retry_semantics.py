"""What an SDK's retries cost upstream: a bounded number, and none for what no retry fixes."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.support.background import BackgroundLoop
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
NO_KEYS = {"providers": {"openai": {"api_key": ""}, "nanogpt": {"api_key": ""}}}


def sdk(stack: Stack) -> openai.OpenAI:
    """The SDK as shipped: two retries."""
    return openai.OpenAI(base_url=stack.base_url, api_key="unused")


def test_one_sdk_call_against_an_always_failing_upstream_makes_at_most_9_calls(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "")
    try:
        stack.upstream.fail_next(100, 500)
        with pytest.raises(openai.InternalServerError):
            sdk(stack).embeddings.create(model=SMALL, input="x")
        assert stack.upstream.request_count == 9  # 3 SDK attempts x 3 gateway attempts
    finally:
        stack.close()


def test_refused_provider_credentials_are_not_retried_by_the_sdk(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "")
    try:
        stack.upstream.fail_next(100, 401)
        with pytest.raises(openai.InternalServerError) as raised:
            sdk(stack).embeddings.create(model=SMALL, input="x")
        assert stack.upstream.request_count == 2  # each deployment once, no SDK retry
    finally:
        stack.close()
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert "refused the gateway's API key (401)" in raised.value.message


def test_with_no_provider_key_the_answer_names_the_variable_to_set(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "", NO_KEYS)
    try:
        response = httpx.post(f"{stack.base_url}/embeddings", json={"model": SMALL, "input": "x"})
        assert stack.upstream.request_count == 0
    finally:
        stack.close()
    assert (response.status_code, response.headers["x-should-retry"]) == (502, "false")
    error = response.json()["error"]
    assert error["message"].startswith("upstream provider ")
    assert "has no API key configured: set providers." in error["message"]
    assert "_API_KEY in the shipped config.yaml" in error["message"]
