"""A key change made on one gateway reaches every other within a second (two instances on one
Redis), and the embedded SQLite store keeps keys and usage across a restart."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis

from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

TOKEN = "internal-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
OVERRIDES = {"auth": {"internal_token": TOKEN}}
# A config key too, so auth is on from the start and an unknown key is refused.
WITH_CONFIG_KEY = {
    "auth": {"internal_token": TOKEN, "keys": [{"name": "ops", "sha256": hash_key("sk-ops")}]}
}
SMALL = "text-embedding-3-small"


def create_key(stack: Stack, name: str) -> dict[str, str]:
    url = f"{stack.base_url}/organization/api_keys"
    response = httpx.post(url, json={"name": name}, headers=ADMIN, timeout=10)
    assert response.status_code == 201
    key: dict[str, str] = response.json()
    return key


def embed(stack: Stack, secret: str) -> int:
    body = {"model": SMALL, "input": "hello"}
    headers = {"Authorization": f"Bearer {secret}"}
    return httpx.post(f"{stack.base_url}/embeddings", json=body, headers=headers).status_code


def seconds_until(condition: Callable[[], bool], limit: float = 3.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, "never happened"
        time.sleep(0.02)
    return time.monotonic() - started


def test_two_instances_on_one_redis_see_create_and_revoke_within_a_second(
    background: BackgroundLoop, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    a = Stack(background, redis_server.url, WITH_CONFIG_KEY)
    b = Stack(background, redis_server.url, WITH_CONFIG_KEY)
    try:
        key = create_key(a, "alice")
        assert seconds_until(lambda: embed(b, key["value"]) == 200) < 1.0
        url = f"{b.base_url}/organization/api_keys/{key['id']}"
        assert httpx.delete(url, headers=ADMIN).status_code == 200
        assert seconds_until(lambda: embed(a, key["value"]) == 401) < 1.0
    finally:
        a.close()
        b.close()


def test_sqlite_keeps_keys_and_usage_across_a_restart(background: BackgroundLoop) -> None:
    stack = Stack(background, "", OVERRIDES)
    try:
        key = create_key(stack, "alice")
        assert embed(stack, key["value"]) == 200
        stack.restart_gateway()
        assert embed(stack, key["value"]) == 200
        usage = httpx.get(f"{stack.base_url}/usage", headers=ADMIN).json()
        assert [(k["key"], k["models"][0]["requests"]) for k in usage["keys"]] == [("alice", 2)]
    finally:
        stack.close()


def test_with_redis_down_keys_keep_working_and_admin_calls_answer_503(
    background: BackgroundLoop, own_redis: RedisServer
) -> None:
    stack = Stack(background, own_redis.url, WITH_CONFIG_KEY)
    try:
        key = create_key(stack, "alice")
        own_redis.kill()
        assert embed(stack, key["value"]) == 200  # the instance's copy of the keys
        listed = httpx.get(f"{stack.base_url}/organization/api_keys", headers=ADMIN, timeout=10)
        assert listed.status_code == 503
        assert listed.json()["error"]["type"] == "service_unavailable"
    finally:
        stack.close()
