"""One behaviour suite over every cache backend: memory, SQLite and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache
from gateway.cache.sqlite import SqliteCache
from gateway.keys import TEXT, cache_keys, key_hasher, model_tag
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

TAG, OTHER = model_tag("model-a"), model_tag("model-b")
TTL = 3600


def keys(*texts: str, cache_id: str = "model-a", generation: int = 0) -> list[bytes]:
    hasher = key_hasher("shared", cache_id, None)
    canonical = [text.encode() for text in texts]
    tag = model_tag(cache_id)
    return cache_keys("gw", hasher, TEXT, canonical, tag=tag, generation=generation)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def cache(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Cache]:
    made: Cache
    if request.param == "memory":
        made = MemoryCache(100, TTL, clock)
    elif request.param == "sqlite":
        made = SqliteCache(
            tmp_path, max_bytes=1 << 20, ttl_seconds=TTL, hot_entries=10, timeout=5, clock=clock
        )
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.asyncio.from_url(server.url)
        await client.flushdb()
        made = RedisCache(client, TTL, timeout=1.0)
    yield made
    await made.close()


async def test_what_is_written_is_read_back(cache: Cache) -> None:
    a, b = keys("a", "b")
    await cache.set_many([(a, b"vector-a")])
    assert await cache.read(TAG, [a, b]) == (0, [b"vector-a", None])


async def test_a_purge_starts_a_new_generation_of_that_model_only(cache: Cache) -> None:
    assert await cache.purge(TAG) == 1
    assert (await cache.read(TAG, []))[0] == 1
    assert (await cache.read(OTHER, []))[0] == 0


async def test_delete_forgets_exactly_the_keys_named(cache: Cache) -> None:
    a, b = keys("a", "b")
    await cache.set_many([(a, b"1"), (b, b"2")])
    assert await cache.delete_many([a]) == 1
    assert await cache.get_many([a, b]) == [None, b"2"]


async def test_contents_count_the_current_generation_per_model(cache: Cache) -> None:
    await cache.set_many([(key, b"x" * 100) for key in keys("a", "b")])
    await cache.set_many([(key, b"x" * 100) for key in keys("c", cache_id="model-b")])
    contents = await cache.contents()
    assert (contents.models[TAG].entries, contents.models[OTHER].entries) == (2, 1)
    assert contents.models[TAG].bytes >= 200
    await cache.purge(TAG)
    assert TAG not in (await cache.contents()).models


async def test_a_request_ttl_is_applied(
    cache: Cache, clock: FakeClock, request: pytest.FixtureRequest
) -> None:
    short, default = keys("short", "default")
    await cache.set_many([(short, b"1")], ttl_seconds=10)
    await cache.set_many([(default, b"2")])
    if cache.name == "redis":  # Redis keeps its own time: ask it
        server: RedisServer = request.getfixturevalue("redis_server")
        with redis.Redis.from_url(server.url) as client:
            assert 0 < client.ttl(short) <= 10
            assert TTL - 5 < client.ttl(default) <= TTL
        return
    clock.advance(11)
    assert await cache.get_many([short, default]) == [None, b"2"]


async def test_a_large_redis_is_sampled_and_marked_estimated(redis_server: RedisServer) -> None:
    client = redis.asyncio.from_url(redis_server.url)
    await client.flushdb()
    cache = RedisCache(client, TTL, timeout=5.0)
    try:
        await cache.set_many([(key, b"x" * 1000) for key in keys(*map(str, range(2500)))])
        await client.mset({f"gw:other:{i}": b"y" for i in range(500)})
        contents = await cache.contents()
        assert contents.estimated is True
        assert 2000 <= contents.models[TAG].entries <= 3000
        assert 2000 * 1000 <= contents.models[TAG].bytes <= 3000 * 1200
    finally:
        await cache.close()
