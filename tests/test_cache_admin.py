"""/v1/organization/cache: see the cache per model, purge a model or forget inputs, on every
instance at once; internal token only, every call audit-logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from gateway.settings import hash_key, key_id
from tests.support.background import BackgroundLoop
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

SMALL, BGE = "text-embedding-3-small", "BAAI/bge-m3"
ALICE, BOB, INTERNAL = "sk-alice-cache-admin", "sk-bob-cache-admin", "sk-internal-cache-admin"
ADMIN = {"Authorization": f"Bearer {INTERNAL}"}
CONFIG: dict[str, Any] = {
    "auth": {
        "keys": [
            {"name": "alice", "sha256": hash_key(ALICE), "team": "search"},
            {"name": "bob", "sha256": hash_key(BOB), "team": "ads"},
        ],
        "internal_token": INTERNAL,
    }
}


@pytest.fixture
def gateway(background: BackgroundLoop, backend: str) -> Iterator[Stack]:
    stack = Stack(background, backend, CONFIG)
    yield stack
    stack.close()


def embed(stack: Stack, inputs: Any, model: str = SMALL, key: str = ALICE) -> str:
    response = httpx.post(
        f"{stack.base_url}/embeddings",
        json={"model": model, "input": inputs},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    stack.drain()
    return response.headers["x-cache"]


def admin(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    url = f"{stack.base_url}/organization/cache{path}"
    return httpx.request(method, url, headers=ADMIN, timeout=10, **kwargs)


def by_model(stack: Stack) -> dict[str, dict[str, Any]]:
    body = admin(stack, "GET", "").json()
    assert body["object"] == "list" and body["has_more"] is False
    return {row["model"]: row for row in body["data"]}


def test_the_listing_shows_entries_bytes_hits_and_misses_per_model(gateway: Stack) -> None:
    embed(gateway, ["one", "two"])
    embed(gateway, ["one", "three"])
    row = by_model(gateway)[SMALL]
    assert (row["entries"], row["hits"], row["misses"]) == (3, 1, 3)
    assert row["hit_ratio"] == 0.25
    assert row["bytes"] > 3 * 6156
    assert row["estimated"] is False
    assert row["object"] == "organization.cache.model" and row["id"] == SMALL
    assert by_model(gateway)[BGE]["entries"] == 0


def test_purging_a_model_makes_its_vectors_misses_and_leaves_others(gateway: Stack) -> None:
    embed(gateway, "kept elsewhere", model=BGE)
    embed(gateway, "purged")
    response = admin(gateway, "DELETE", f"/models/{SMALL}")
    assert response.status_code == 200
    assert response.json() == {
        "object": "organization.cache.model.deleted",
        "id": SMALL,
        "deleted": True,
        "generation": 1,
    }
    assert embed(gateway, "purged") == "MISS"
    assert embed(gateway, "kept elsewhere", model=BGE) == "HIT"
    assert by_model(gateway)[SMALL]["entries"] == 1  # only what was written since


def test_a_model_whose_name_has_a_slash_can_be_purged(gateway: Stack) -> None:
    embed(gateway, "x", model=BGE)
    assert admin(gateway, "DELETE", f"/models/{BGE}").status_code == 200
    assert embed(gateway, "x", model=BGE) == "MISS"


def test_purging_an_unknown_model_is_a_404(gateway: Stack) -> None:
    response = admin(gateway, "DELETE", "/models/no-such-model")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_deleting_inputs_forgets_exactly_those(gateway: Stack) -> None:
    embed(gateway, ["forget me", "keep me"])
    response = admin(gateway, "POST", "/delete", json={"model": SMALL, "input": ["forget me"]})
    assert response.json() == {
        "object": "organization.cache.deletion",
        "model": SMALL,
        "inputs": 1,
        "scopes": ["shared"],
        "deleted": 1,
    }
    assert embed(gateway, "keep me") == "HIT"
    assert embed(gateway, "forget me") == "MISS"


def test_a_delete_body_is_validated_like_an_embeddings_call(gateway: Stack) -> None:
    response = admin(gateway, "POST", "/delete", json={"model": SMALL, "input": []})
    assert response.status_code == 400
    response = admin(gateway, "POST", "/delete", json={"model": SMALL, "input": "x", "scopes": 3})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "scopes"


def test_every_call_needs_the_internal_token(gateway: Stack) -> None:
    for key in (ALICE, "wrong", None):
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        url = f"{gateway.base_url}/organization/cache"
        assert httpx.get(url, headers=headers).status_code == 401
        assert httpx.delete(f"{url}/models/{SMALL}", headers=headers).status_code == 401


def test_every_call_is_audit_logged_without_a_secret(
    gateway: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.audit"):
        admin(gateway, "DELETE", f"/models/{SMALL}")
        httpx.get(f"{gateway.base_url}/organization/cache", headers={"x-api-key": ALICE})
    lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.audit"]
    assert [(line["audit"], line["model"], line["status"]) for line in lines] == [
        ("cache.purge", SMALL, 200),
        ("cache.list", None, 401),
    ]
    assert INTERNAL not in caplog.text and ALICE not in caplog.text


def test_a_delete_reaches_every_scope_named(background: BackgroundLoop) -> None:
    config = CONFIG | {"auth": CONFIG["auth"] | {"cache_scope": "key"}}
    stack = Stack(background, "sqlite", config)
    try:
        embed(stack, "private", key=ALICE)
        embed(stack, "private", key=BOB)
        alice = stack.settings.auth.keys[0]
        body = {"model": SMALL, "input": "private", "scopes": [f"key:{key_id(alice)}"]}
        assert admin(stack, "POST", "/delete", json=body).json()["deleted"] == 1
        assert embed(stack, "private", key=ALICE) == "MISS"
        assert embed(stack, "private", key=BOB) == "HIT"
    finally:
        stack.close()


def purge_on_a_is_a_miss_on_b(a: Stack, b: Stack) -> None:
    embed(a, "shared input")
    assert embed(b, "shared input") == "HIT"  # b now knows the generation (and, on SQLite,
    assert admin(a, "DELETE", f"/models/{SMALL}").status_code == 200  # holds it in memory)
    assert embed(b, "shared input") == "MISS"
    assert embed(a, "shared input") == "HIT"  # b's fetch is a's hit: one cache again


def test_a_purge_on_one_instance_is_a_miss_on_another_on_one_redis(
    background: BackgroundLoop, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    a = Stack(background, redis_server.url, CONFIG)
    b = Stack(background, redis_server.url, CONFIG)
    try:
        purge_on_a_is_a_miss_on_b(a, b)
    finally:
        a.close()
        b.close()


def test_a_purge_on_one_instance_is_a_miss_on_another_on_one_sqlite_file(
    background: BackgroundLoop, tmp_path: Path
) -> None:
    shared = CONFIG | {"stores": {"data_dir": str(tmp_path)}}
    a, b = Stack(background, "sqlite", shared), Stack(background, "sqlite", shared)
    try:
        purge_on_a_is_a_miss_on_b(a, b)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("auth", "listing"),
    [
        ({}, 200),  # no keys, no token: figures are open, the cache's listing too
        ({"keys": CONFIG["auth"]["keys"]}, 401),
        ({"internal_token": INTERNAL}, 401),
    ],
    ids=["auth-off", "keys", "token"],
)
def test_only_a_gateway_without_keys_or_token_lists_its_cache_to_anyone(
    background: BackgroundLoop, auth: dict[str, Any], listing: int
) -> None:
    stack = Stack(background, "memory", {"auth": auth})
    try:
        url = f"{stack.base_url}/organization/cache"
        assert httpx.get(url, timeout=10).status_code == listing
        assert httpx.delete(f"{url}/models/{SMALL}", timeout=10).status_code == 401
    finally:
        stack.close()
