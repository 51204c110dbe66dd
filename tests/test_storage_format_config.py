"""`cache.storage_format` chooses how new entries are written; every entry is read by its own
format, across a change of the setting and across gateways set differently."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import redis

from gateway import codec
from gateway.codec import StorageFormat
from gateway.service import PACK_ON_LOOP
from tests.support.background import BackgroundLoop
from tests.support.fake_upstream import vector_for
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack

SMALL = "text-embedding-3-small"


def formatted(storage: StorageFormat) -> dict[str, dict[str, object]]:
    """The setting, and room for a busy test machine: a slow cache call here is not a miss."""
    return {"cache": {"storage_format": storage, "timeout": 2.0}}


def embed(stack: Stack, *texts: str) -> tuple[str, list[np.ndarray]]:
    body = {"model": SMALL, "input": list(texts), "encoding_format": "float"}
    response = httpx.post(f"{stack.base_url}/embeddings", json=body, timeout=10)
    assert response.status_code == 200
    vectors = [np.asarray(item["embedding"], dtype="<f4") for item in response.json()["data"]]
    stack.drain()
    return response.headers["x-cache"], vectors


def expected(text: str) -> np.ndarray:
    return vector_for(SMALL, text, 1536)


def restart_with(stack: Stack, storage: StorageFormat) -> None:
    cache = dataclasses.replace(stack.settings.cache, storage_format=storage)
    stack.settings = dataclasses.replace(stack.settings, cache=cache)
    stack.restart_gateway()


@pytest.fixture(params=["sqlite", "redis"])
def durable(request: pytest.FixtureRequest, background: BackgroundLoop) -> Iterator[Stack]:
    """A gateway whose cache outlives a restart."""
    backend = str(request.param)
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        with redis.Redis.from_url(server.url) as client:
            client.flushdb()
        backend = server.url
    stack = Stack(background, backend, formatted("raw"))
    yield stack
    stack.close()


def stored_formats(redis_url: str) -> set[StorageFormat | None]:
    with redis.Redis.from_url(redis_url) as client:
        return {codec.stored_format(client.get(key)) for key in client.keys("gw:e:*")}


def test_entries_written_before_a_format_change_are_hits_after_it(durable: Stack) -> None:
    embed(durable, "raw text")
    restart_with(durable, "compact")
    assert embed(durable, "compact text")[0] == "MISS"
    restart_with(durable, "float16")
    assert embed(durable, "half text")[0] == "MISS"
    restart_with(durable, "raw")
    state, (raw, compact, half) = embed(durable, "raw text", "compact text", "half text")
    assert state == "HIT"
    assert raw.tobytes() == expected("raw text").tobytes()
    assert compact.tobytes() == expected("compact text").tobytes()
    np.testing.assert_allclose(half, expected("half text"), atol=2.0**-11)


def test_gateways_set_differently_share_one_redis(
    background: BackgroundLoop, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    compact = Stack(background, redis_server.url, formatted("compact"))
    half = Stack(background, redis_server.url, formatted("float16"))
    try:
        embed(compact, "written compact")
        embed(half, "written in float16")
        assert stored_formats(redis_server.url) == {"compact", "float16"}
        for stack in (compact, half):
            state, (lossless, rounded) = embed(stack, "written compact", "written in float16")
            assert state == "HIT"
            assert lossless.tobytes() == expected("written compact").tobytes()
            np.testing.assert_allclose(rounded, expected("written in float16"), atol=2.0**-11)
    finally:
        compact.close()
        half.close()


def test_a_batch_too_large_to_pack_on_the_event_loop_is_stored_all_the_same(
    background: BackgroundLoop, redis_server: RedisServer
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    stack = Stack(background, redis_server.url, formatted("compact"))
    texts = [f"batch input {i}" for i in range(PACK_ON_LOOP + 8)]
    try:
        assert embed(stack, *texts)[0] == "MISS"
        state, vectors = embed(stack, *texts)
    finally:
        stack.close()
    assert state == "HIT"
    assert [v.tobytes() for v in vectors] == [expected(text).tobytes() for text in texts]
    assert stored_formats(redis_server.url) == {"compact"}


@pytest.mark.parametrize("storage", ["compact", "float16"])
def test_a_corrupted_entry_of_either_format_is_refetched_and_overwritten(
    background: BackgroundLoop, redis_server: RedisServer, storage: StorageFormat
) -> None:
    with redis.Redis.from_url(redis_server.url) as client:
        client.flushdb()
    stack = Stack(background, redis_server.url, formatted(storage))
    try:
        embed(stack, "to be corrupted")
        with redis.Redis.from_url(redis_server.url) as client:
            (key,) = client.keys("gw:e:*")
            value = client.get(key)
            assert value is not None
            client.set(key, value[:-3] + bytes([value[-3] ^ 0x01]) + value[-2:])
        states = [embed(stack, "to be corrupted") for _ in range(2)]
    finally:
        stack.close()
    assert [state for state, _ in states] == ["MISS", "HIT"]
    np.testing.assert_allclose(states[1][1][0], expected("to be corrupted"), atol=2.0**-11)
