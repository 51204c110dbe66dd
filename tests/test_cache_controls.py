"""Per-request cache controls: refresh, no-store and a TTL, within what the caller's key allows."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from gateway import cli
from gateway.settings import hash_key
from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, write_config

SMALL = "text-embedding-3-small"
ALL, PLAIN, INTERNAL = "sk-all-controls", "sk-default-controls", "sk-internal-controls"
TEXTS = ["a provider changed its model", "quietly"]


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    keys = [
        {"name": "ops", "sha256": hash_key(ALL), "cache_controls": ["no-cache", "no-store", "ttl"]},
        {"name": "app", "sha256": hash_key(PLAIN)},
    ]
    stack = Stack(background, backend, {"auth": {"keys": keys, "internal_token": INTERNAL}})
    yield stack
    stack.close()


def embed(stack: Stack, key: str = ALL, **headers: str) -> httpx.Response:
    response = httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": SMALL, "input": TEXTS, "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=10,
    )
    stack.drain()
    return response


def vectors(response: httpx.Response) -> list[str]:
    return [item["embedding"] for item in response.json()["data"]]


def test_refresh_fetches_every_input_and_overwrites_its_entry(gateway: Stack) -> None:
    old = embed(gateway)
    gateway.upstream.revision = "-v2"
    refreshed = embed(gateway, **{"Cache-Control": "no-cache"})
    assert refreshed.headers["x-cache"] == "REFRESH"
    assert refreshed.headers["x-cache-hits"] == "0/2"
    assert gateway.upstream.inputs_embedded == 4
    assert vectors(refreshed) != vectors(old)
    after = embed(gateway)
    assert after.headers["x-cache"] == "HIT"
    assert vectors(after) == vectors(refreshed)


def test_a_refresh_costs_what_a_miss_costs(gateway: Stack) -> None:
    miss = embed(gateway)
    refreshed = embed(gateway, **{"Cache-Control": "no-cache"})
    assert float(miss.headers["x-gateway-cost-usd"]) > 0
    assert refreshed.headers["x-gateway-cost-usd"] == miss.headers["x-gateway-cost-usd"]
    assert refreshed.headers["x-gateway-saved-usd"] == miss.headers["x-gateway-saved-usd"]
    assert refreshed.json()["usage"] == miss.json()["usage"]


def test_no_store_writes_nothing(gateway: Stack) -> None:
    assert embed(gateway, **{"Cache-Control": "no-store"}).headers["x-cache"] == "MISS"
    assert embed(gateway).headers["x-cache"] == "MISS"
    assert gateway.upstream.inputs_embedded == 4


def test_no_store_still_serves_hits(gateway: Stack) -> None:
    embed(gateway)
    assert embed(gateway, **{"Cache-Control": "no-store"}).headers["x-cache"] == "HIT"


def test_a_key_without_the_permission_gets_403(gateway: Stack) -> None:
    response = embed(gateway, PLAIN, **{"Cache-Control": "no-cache"})
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "may not use Cache-Control: no-cache" in error["message"]
    assert gateway.upstream.inputs_embedded == 0


def test_a_ttl_needs_its_permission_too(gateway: Stack) -> None:
    response = embed(gateway, PLAIN, **{"x-gateway-cache-ttl": "60"})
    assert response.status_code == 403
    assert "x-gateway-cache-ttl" in response.json()["error"]["message"]


def test_no_store_is_allowed_by_default(gateway: Stack) -> None:
    assert embed(gateway, PLAIN, **{"Cache-Control": "no-store"}).status_code == 200


def test_the_internal_token_may_use_every_control(gateway: Stack) -> None:
    response = embed(gateway, INTERNAL, **{"Cache-Control": "no-cache", "x-gateway-cache-ttl": "9"})
    assert response.status_code == 200


@pytest.mark.parametrize("ttl", ["0", "-5", "1.5", "soon", "2592001"])
def test_a_ttl_outside_the_configured_bounds_is_a_400(gateway: Stack, ttl: str) -> None:
    response = embed(gateway, **{"x-gateway-cache-ttl": ttl})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x-gateway-cache-ttl"


def test_runtime_keys_carry_their_cache_controls(gateway: Stack) -> None:
    admin = {"Authorization": f"Bearer {INTERNAL}"}
    keys = f"{gateway.base_url}/organization/api_keys"
    body = {"name": "refresher", "cache_controls": ["no-cache"]}
    created = httpx.post(keys, json=body, headers=admin, timeout=10).json()
    assert created["cache_controls"] == ["no-cache"]
    assert httpx.post(keys, json={"name": "plain"}, headers=admin).json()["cache_controls"] == [
        "no-store"
    ]
    assert embed(gateway, created["value"], **{"Cache-Control": "no-cache"}).status_code == 200
    assert embed(gateway, created["value"], **{"Cache-Control": "no-store"}).status_code == 403
    update = {"cache_controls": ["no-cache", "no-store"]}
    httpx.post(f"{keys}/{created['id']}", json=update, headers=admin, timeout=10)
    assert embed(gateway, created["value"], **{"Cache-Control": "no-store"}).status_code == 200


def test_config_keys_show_their_cache_controls_in_the_admin_api(gateway: Stack) -> None:
    admin = {"Authorization": f"Bearer {INTERNAL}"}
    listed = httpx.get(f"{gateway.base_url}/organization/api_keys", headers=admin).json()
    controls = {key["name"]: key["cache_controls"] for key in listed["data"]}
    assert controls == {"ops": ["no-cache", "no-store", "ttl"], "app": ["no-store"]}


def test_cache_controls_of_a_runtime_key_are_validated(gateway: Stack) -> None:
    admin = {"Authorization": f"Bearer {INTERNAL}"}
    body = {"name": "bad", "cache_controls": ["everything"]}
    response = httpx.post(f"{gateway.base_url}/organization/api_keys", json=body, headers=admin)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "cache_controls"


def ttl_stack(background: BackgroundLoop, backend: str) -> Stack:
    keys = [{"name": "ops", "sha256": hash_key(ALL), "cache_controls": ["ttl"]}]
    return Stack(background, backend, {"auth": {"keys": keys}})


def test_a_request_ttl_reaches_redis(background: BackgroundLoop, redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
        stack = ttl_stack(background, redis_server.url)
        try:
            embed(stack, **{"x-gateway-cache-ttl": "120"})
            ttls = [client.ttl(key) for key in client.scan_iter(match="gw:e:*")]
        finally:
            stack.close()
    assert len(ttls) == 2 and all(0 < ttl <= 120 for ttl in ttls)


def test_a_request_ttl_reaches_the_sqlite_file(background: BackgroundLoop) -> None:
    stack = ttl_stack(background, "sqlite")
    try:
        embed(stack, **{"x-gateway-cache-ttl": "120"})
        with sqlite3.connect(Path(stack.data_dir) / "cache.db") as db:
            lifetimes = [row[0] for row in db.execute("SELECT expires - created FROM entries")]
    finally:
        stack.close()
    assert lifetimes == [120.0, 120.0]


def test_the_keys_command_grants_cache_controls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "c.yaml", "http://127.0.0.1:9/v1", "", {"stores": {"keys": "sqlite"}}
    )
    argv = ["keys", "create", "--name", "refresher", "--cache-control", "no-cache"]
    assert cli.main([*argv, "--cache-control", "ttl", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["cache_controls"] == ["no-cache", "ttl"]
