"""The Redis cache behind its store guard: a dead Redis costs nothing per request, failures
are counted, and it recovers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.exceptions import RedisError

from gateway.cache.redis import RedisCache
from gateway.guarded import GuardedCache
from gateway.store import StoreGuard, StoreUnavailable
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
def guard(clock: FakeClock) -> StoreGuard:
    return StoreGuard(
        "redis", timeout=1.0, failures=(RedisError, OSError), cooldown=2.0, clock=clock
    )


@pytest.fixture
def errors() -> list[str]:
    return []


@pytest.fixture
def cache(inner: RedisCache, guard: StoreGuard, errors: list[str]) -> GuardedCache:
    return GuardedCache(inner, guard, guard, on_error=errors.append)


async def trip(cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer) -> None:
    own_redis.kill()
    for _ in range(3):
        assert await cache.get_many([KEY]) == [None]
    assert guard.state == "open"


async def test_the_raw_cache_raises_store_unavailable(
    inner: RedisCache, own_redis: RedisServer
) -> None:
    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        await inner.get_many([KEY])
    with pytest.raises(StoreUnavailable):
        await inner.set_many([(KEY, VALUE)])


async def test_it_passes_reads_and_writes_through_while_redis_works(
    cache: GuardedCache, guard: StoreGuard, errors: list[str]
) -> None:
    await cache.set_many([(KEY, VALUE)])
    assert await cache.get_many([KEY, b"gw:test:absent"]) == [VALUE, None]
    assert (guard.state, errors, cache.name) == ("closed", [], "redis")


async def test_it_opens_after_three_failed_calls(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer
) -> None:
    await trip(cache, guard, own_redis)
    assert guard.errors.count == 3


async def test_an_open_breaker_answers_misses_without_waiting_for_redis(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer
) -> None:
    await trip(cache, guard, own_redis)
    started = time.perf_counter()
    assert await cache.get_many([KEY, KEY]) == [None, None]
    assert time.perf_counter() - started < TIMEOUT / 10
    assert guard.errors.count == 3  # the inner cache was not asked


async def test_an_open_breaker_skips_writes(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer
) -> None:
    await trip(cache, guard, own_redis)
    await cache.set_many([(KEY, VALUE)])
    assert (guard.errors.count, guard.skipped) == (3, 1)


async def test_it_stays_open_until_the_cooldown_even_when_redis_is_back(
    cache: GuardedCache,
    guard: StoreGuard,
    inner: RedisCache,
    own_redis: RedisServer,
    clock: FakeClock,
) -> None:
    await trip(cache, guard, own_redis)
    own_redis.start()
    await inner.set_many([(KEY, VALUE)])
    clock.advance(1.9)
    assert await cache.get_many([KEY]) == [None]


async def test_it_recovers_after_the_cooldown_once_redis_is_back(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer, clock: FakeClock
) -> None:
    await trip(cache, guard, own_redis)
    own_redis.start()
    clock.advance(2.0)
    await cache.set_many([(KEY, VALUE)])  # the probe
    assert guard.state == "closed"
    assert await cache.get_many([KEY]) == [VALUE]


async def test_a_failed_probe_keeps_it_open(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer, clock: FakeClock
) -> None:
    await trip(cache, guard, own_redis)
    clock.advance(2.0)
    assert await cache.get_many([KEY]) == [None]
    assert (guard.state, guard.errors.count) == ("open", 4)


async def test_failed_reads_and_writes_are_reported(
    cache: GuardedCache, own_redis: RedisServer, errors: list[str]
) -> None:
    own_redis.kill()
    await cache.get_many([KEY])
    await cache.set_many([(KEY, VALUE)])
    assert errors == ["read", "write"]


async def test_ping_always_asks_redis(
    cache: GuardedCache, guard: StoreGuard, own_redis: RedisServer
) -> None:
    await trip(cache, guard, own_redis)
    assert not await cache.ping()
    own_redis.start()
    assert await cache.ping()
