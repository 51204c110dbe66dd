"""One behaviour suite for every cache backend."""

from __future__ import annotations

import redis.asyncio

from gateway.cache import Cache
from gateway.cache.redis import RedisCache, RedisClient
from gateway.keys import TEXT, cache_keys, key_hasher, model_tag
from tests.stores.conftest import CACHE_TTL
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

KEYS = [b"gw:test:a", b"gw:test:b", b"gw:test:{slot}:c"]
TAG, OTHER = model_tag("model-a"), model_tag("model-b")


async def test_a_batch_reads_back_what_was_written_in_order(cache_store: Cache) -> None:
    await cache_store.set_many([(KEYS[0], b"one"), (KEYS[2], b"three")])
    assert await cache_store.get_many(KEYS) == [b"one", None, b"three"]


async def test_a_later_write_replaces_the_value(cache_store: Cache) -> None:
    await cache_store.set_many([(KEYS[1], b"old")])
    await cache_store.set_many([(KEYS[1], b"new")])
    assert await cache_store.get_many([KEYS[1]]) == [b"new"]


async def test_binary_values_come_back_byte_for_byte(cache_store: Cache) -> None:
    value = bytes(range(256)) * 4
    await cache_store.set_many([(KEYS[0], value)])
    assert await cache_store.get_many([KEYS[0]]) == [value]


async def test_it_answers_ping(cache_store: Cache) -> None:
    assert await cache_store.ping()


def keys(*texts: str, cache_id: str = "model-a", generation: int = 0) -> list[bytes]:
    hasher = key_hasher("shared", cache_id, None)
    canonical = [text.encode() for text in texts]
    tag = model_tag(cache_id)
    return cache_keys("gw", hasher, TEXT, canonical, tag=tag, generation=generation)


async def test_a_read_answers_the_models_generation_with_the_values(cache_store: Cache) -> None:
    a, b = keys("a", "b")
    await cache_store.set_many([(a, b"vector-a")])
    assert await cache_store.read(TAG, [a, b]) == (0, [b"vector-a", None])


async def test_a_purge_starts_a_new_generation_of_that_model_only(cache_store: Cache) -> None:
    assert await cache_store.purge(TAG) == 1
    assert (await cache_store.read(TAG, []))[0] == 1
    assert (await cache_store.read(OTHER, []))[0] == 0


async def test_delete_forgets_exactly_the_keys_named(cache_store: Cache) -> None:
    a, b = keys("a", "b")
    await cache_store.set_many([(a, b"1"), (b, b"2")])
    assert await cache_store.delete_many([a]) == 1
    assert await cache_store.get_many([a, b]) == [None, b"2"]


async def test_contents_count_the_current_generation_per_model(cache_store: Cache) -> None:
    await cache_store.set_many([(key, b"x" * 100) for key in keys("a", "b")])
    await cache_store.set_many([(key, b"x" * 100) for key in keys("c", cache_id="model-b")])
    contents = await cache_store.contents()
    assert (contents.models[TAG].entries, contents.models[OTHER].entries) == (2, 1)
    assert contents.models[TAG].bytes >= 200
    await cache_store.purge(TAG)
    assert TAG not in (await cache_store.contents()).models


async def test_a_request_ttl_is_applied(
    cache_store: Cache, cache_clock: FakeClock, redis_client: RedisClient | None
) -> None:
    short, default = keys("short", "default")
    await cache_store.set_many([(short, b"1")], ttl_seconds=10)
    await cache_store.set_many([(default, b"2")])
    if redis_client is not None:  # Redis keeps its own time: ask it
        assert 0 < await redis_client.ttl(short) <= 10
        assert CACHE_TTL - 5 < await redis_client.ttl(default) <= CACHE_TTL
        return
    cache_clock.advance(11)
    assert await cache_store.get_many([short, default]) == [None, b"2"]


async def test_a_large_redis_is_sampled_and_marked_estimated(redis_server: RedisServer) -> None:
    client = redis.asyncio.from_url(redis_server.url)
    await client.flushdb()
    cache = RedisCache(client, CACHE_TTL, timeout=5.0)
    try:
        await cache.set_many([(key, b"x" * 1000) for key in keys(*map(str, range(2500)))])
        await client.mset({f"gw:other:{i}": b"y" for i in range(500)})
        contents = await cache.contents()
        assert contents.estimated is True
        assert 2000 <= contents.models[TAG].entries <= 3000
        assert 2000 * 1000 <= contents.models[TAG].bytes <= 3000 * 1200
    finally:
        await cache.close()
