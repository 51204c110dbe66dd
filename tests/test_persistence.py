"""A gateway on a shared Redis keeps its cache across restarts, and a dead Redis costs
nothing but cache hits."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

BODY = {"model": "text-embedding-3-small", "input": ["kept", "across", "restarts"]}


def post(stack: Stack) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/embeddings", json=BODY, timeout=10)


def test_a_restarted_gateway_serves_earlier_inputs_from_redis(
    background: BackgroundLoop, own_redis: RedisServer
) -> None:
    stack = Stack(background, own_redis.url)
    try:
        post(stack)
        stack.restart_gateway()
        response = post(stack)
        assert response.headers["x-cache"] == "HIT"
        assert stack.upstream.inputs_embedded == 3
    finally:
        stack.close()


def test_requests_succeed_from_upstream_while_redis_is_down(
    background: BackgroundLoop, own_redis: RedisServer
) -> None:
    stack = Stack(background, own_redis.url)
    try:
        own_redis.kill()
        first, second = post(stack), post(stack)
        assert (first.status_code, second.status_code) == (200, 200)
        assert second.json() == first.json()
        assert httpx.get(f"{stack.url}/readyz").status_code == 503
    finally:
        stack.close()


def test_the_cache_works_again_after_redis_restarts(
    background: BackgroundLoop, own_redis: RedisServer
) -> None:
    # A killed Redis refuses at once; the timeout only has to cover a busy machine's answers.
    config = {"cache": {"breaker_cooldown": 0.1, "timeout": 2.0}}
    stack = Stack(background, own_redis.url, config)
    try:
        own_redis.kill()
        assert [post(stack).status_code for _ in range(5)] == [200] * 5
        own_redis.start()  # an empty Redis on the same port
        time.sleep(0.2)  # the breaker's real cooldown: this test runs a real process
        post(stack)
        stack.drain()
        assert post(stack).headers["x-cache"] == "HIT"
    finally:
        stack.close()


def test_the_embedded_default_keeps_its_cache_across_restarts(background: BackgroundLoop) -> None:
    stack = Stack(background, "")
    try:
        post(stack)
        stack.restart_gateway()
        assert post(stack).headers["x-cache"] == "HIT"
        assert stack.upstream.inputs_embedded == 3
        assert (Path(stack.data_dir) / "cache.db").is_file()
    finally:
        stack.close()
