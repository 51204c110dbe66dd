"""Every caller is a tenant with its own limits, enforced across instances sharing a Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"
ALICE, BOB, CAROL, INTERNAL = "sk-alice-1234567890", "sk-bob-0987654321", "sk-carol-x", "sk-int"
NEVER_REFILL = 0.0001  # requests per second: no refill within a test


def keys_config(**limits: Any) -> dict[str, Any]:
    return {
        "auth": {
            "keys": [
                {"name": "alice", "sha256": hash_key(ALICE), "team": "search", "limits": limits},
                {"name": "bob", "sha256": hash_key(BOB), "team": "search", "limits": limits},
                {"name": "carol", "sha256": hash_key(CAROL), "models": ["BAAI/bge-m3"]},
            ],
            "internal_token": INTERNAL,
        }
    }


@pytest.fixture
def tenants(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    stack = Stack(
        background, backend, keys_config(requests_per_second=NEVER_REFILL, requests_burst=3)
    )
    yield stack
    stack.close()


def client(stack: Stack, key: str, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url, api_key=key, max_retries=retries)


def post(stack: Stack, headers: dict[str, str], body: Any = None) -> httpx.Response:
    body = body or {"model": SMALL, "input": "x"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, headers=headers, timeout=10)


def test_a_request_without_a_key_is_refused(tenants: Stack) -> None:
    response = post(tenants, {})
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("You didn't provide an API key.")


def test_the_openai_client_sees_authentication_error_for_a_wrong_key(tenants: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        client(tenants, "sk-wrong-key-abcdef").embeddings.create(model=SMALL, input="x")
    assert raised.value.code == "invalid_api_key"
    assert "sk-wrong-key-abcdef" not in raised.value.response.text


def test_nanogpt_x_api_key_header_is_accepted(tenants: Stack) -> None:
    assert post(tenants, {"x-api-key": ALICE}).status_code == 200


def test_a_model_outside_the_keys_allow_list_is_forbidden(tenants: Stack) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client(tenants, CAROL).embeddings.create(model=SMALL, input="x")
    assert client(tenants, CAROL).embeddings.create(model="BAAI/bge-m3", input="x").data


def test_success_carries_openai_rate_limit_headers(tenants: Stack) -> None:
    headers = post(tenants, {"Authorization": f"Bearer {ALICE}"}).headers
    assert headers["x-ratelimit-limit-requests"] == "3"
    assert headers["x-ratelimit-remaining-requests"] == "2"
    assert headers["x-ratelimit-limit-tokens"] == "1000000"
    assert headers["x-ratelimit-remaining-tokens"] == "999999"
    assert headers["x-ratelimit-reset-tokens"].endswith("ms")


def test_a_tenant_past_its_burst_gets_429s_while_another_keeps_working(tenants: Stack) -> None:
    alice = client(tenants, ALICE)
    for _ in range(3):
        alice.embeddings.create(model=SMALL, input="x")
    with pytest.raises(openai.RateLimitError) as raised:
        alice.embeddings.create(model=SMALL, input="x")
    response = raised.value.response
    assert raised.value.code == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 60
    assert int(response.headers["retry-after-ms"]) >= 1
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert client(tenants, BOB).embeddings.create(model=SMALL, input="x").data


def test_the_internal_token_is_not_rate_limited(tenants: Stack) -> None:
    statuses = {
        post(tenants, {"Authorization": f"Bearer {INTERNAL}"}).status_code for _ in range(6)
    }
    assert statuses == {200}


def test_a_request_over_the_token_budget_is_refused_with_type_tokens(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "", keys_config(tokens_per_minute=10))
    try:
        ok = post(stack, {"x-api-key": ALICE}, {"model": SMALL, "input": "one two three"})
        refused = post(
            stack,
            {"x-api-key": ALICE},
            {"model": SMALL, "input": "four five six seven eight nine ten eleven"},
        )
        assert ok.status_code == 200
        assert refused.status_code == 429
        assert refused.json()["error"]["type"] == "tokens"
    finally:
        stack.close()


def test_a_request_larger_than_the_whole_token_burst_is_too_large_for_good(
    background: BackgroundLoop,
) -> None:
    stack = Stack(background, "", keys_config(tokens_per_minute=5))
    try:
        body = {"model": SMALL, "input": [[1] * 8]}
        refused = post(stack, {"x-api-key": ALICE}, body)
        with pytest.raises(openai.RateLimitError):
            client(stack, ALICE, retries=2).embeddings.create(model=SMALL, input=[[1] * 8])
    finally:
        stack.close()
    assert (refused.status_code, refused.headers["x-should-retry"]) == (429, "false")
    assert "retry-after" not in refused.headers
    assert "retry-after-ms" not in refused.headers
    assert refused.json()["error"] == {
        "message": "Request too large for text-embedding-3-small per key on tokens per min (TPM): "
        "Limit 5, Requested 8. The input or output tokens must be reduced in order to run "
        "successfully.",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert stack.upstream.request_count == 0


def test_the_client_honours_retry_after_and_succeeds(background: BackgroundLoop) -> None:
    stack = Stack(background, "", keys_config(requests_per_second=5, requests_burst=1))
    try:
        alice = client(stack, ALICE, retries=2)
        alice.embeddings.create(model=SMALL, input="x")
        assert alice.embeddings.create(model=SMALL, input="x").data
    finally:
        stack.close()


def scoped(background: BackgroundLoop, scope: str) -> Stack:
    config = keys_config()
    config["auth"]["cache_scope"] = scope
    return Stack(background, "", config)


@pytest.mark.parametrize(("scope", "upstream_inputs"), [("shared", 1), ("team", 1), ("key", 2)])
def test_cache_scope_decides_whose_entries_a_tenant_can_hit(
    background: BackgroundLoop, scope: str, upstream_inputs: int
) -> None:
    stack = scoped(background, scope)
    try:
        post(stack, {"x-api-key": ALICE})
        stack.drain()
        post(stack, {"x-api-key": BOB})
        assert stack.upstream.inputs_embedded == upstream_inputs
    finally:
        stack.close()


def test_two_instances_on_one_redis_hold_one_combined_limit(
    background: BackgroundLoop, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    config = keys_config(requests_per_second=NEVER_REFILL, requests_burst=100)
    config["limits"] = {"repeat_hold_seconds": 0}  # refusals answered at once: counted, not timed
    first, second = (
        Stack(background, redis_server.url, config),
        Stack(background, redis_server.url, config),
    )
    try:
        admitted = sum(
            post(stack, {"x-api-key": ALICE}).status_code == 200
            for _ in range(75)
            for stack in (first, second)
        )
        assert 95 <= admitted <= 105
    finally:
        first.close()
        second.close()
