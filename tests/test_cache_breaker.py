"""BreakerCache over a real Redis: a dead Redis costs nothing per request, and it recovers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway.cache.breaker import BreakerCache
from gateway.cache.redis import RedisCache
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

TIMEOUT = 0.1  # the inner cache's per-call timeout
KEY, VALUE = b"gw:test:key", b"vector-bytes"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def inner(own_redis: RedisServer) -> AsyncIterator[RedisCache]:
    client = redis.asyncio.from_url(own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    cache = RedisCache(client, ttl_seconds=60, timeout=TIMEOUT)
    yield cache
    await cache.close()


@pytest.fixture
def cache(inner: RedisCache, clock: FakeClock) -> BreakerCache:
    return BreakerCache(inner, failure_threshold=3, cooldown=2.0, clock=clock)


async def trip(cache: BreakerCache, own_redis: RedisServer) -> None:
    own_redis.kill()
    for _ in range(3):
        assert await cache.get_many([KEY]) == [None]
    assert cache.state == "open"


async def test_it_passes_reads_and_writes_through_while_redis_works(cache: BreakerCache) -> None:
    await cache.set_many([(KEY, VALUE)])
    assert await cache.get_many([KEY, b"gw:test:absent"]) == [VALUE, None]
    assert (cache.state, cache.errors, cache.name) == ("closed", 0, "redis")


async def test_it_opens_after_three_failed_calls(
    cache: BreakerCache, own_redis: RedisServer
) -> None:
    await trip(cache, own_redis)
    assert cache.errors == 3


async def test_an_open_breaker_answers_misses_without_waiting_for_redis(
    cache: BreakerCache, own_redis: RedisServer
) -> None:
    await trip(cache, own_redis)
    started = time.perf_counter()
    assert await cache.get_many([KEY, KEY]) == [None, None]
    assert time.perf_counter() - started < TIMEOUT / 10
    assert cache.errors == 3  # the inner cache was not asked


async def test_an_open_breaker_skips_writes(cache: BreakerCache, own_redis: RedisServer) -> None:
    await trip(cache, own_redis)
    await cache.set_many([(KEY, VALUE)])
    assert (cache.errors, cache.skipped) == (3, 1)


async def test_it_stays_open_until_the_cooldown_even_when_redis_is_back(
    cache: BreakerCache, inner: RedisCache, own_redis: RedisServer, clock: FakeClock
) -> None:
    await trip(cache, own_redis)
    own_redis.start()
    await inner.set_many([(KEY, VALUE)])
    clock.advance(1.9)
    assert await cache.get_many([KEY]) == [None]


async def test_it_recovers_after_the_cooldown_once_redis_is_back(
    cache: BreakerCache, own_redis: RedisServer, clock: FakeClock
) -> None:
    await trip(cache, own_redis)
    own_redis.start()
    clock.advance(2.0)
    await cache.set_many([(KEY, VALUE)])  # the probe
    assert cache.state == "closed"
    assert await cache.get_many([KEY]) == [VALUE]


async def test_a_failed_probe_keeps_it_open(
    cache: BreakerCache, own_redis: RedisServer, clock: FakeClock
) -> None:
    await trip(cache, own_redis)
    clock.advance(2.0)
    assert await cache.get_many([KEY]) == [None]
    assert (cache.state, cache.errors) == ("open", 4)


async def test_ping_always_asks_redis(cache: BreakerCache, own_redis: RedisServer) -> None:
    await trip(cache, own_redis)
    assert not await cache.ping()
    own_redis.start()
    assert await cache.ping()
