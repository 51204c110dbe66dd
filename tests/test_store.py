"""Every Redis-backed part behind one store policy: a stalled Redis costs at most one timeout per
breaker window, usage answers without a 500, billing counters survive eviction, and failed
writes log one line per interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
import redis.asyncio
import redis.exceptions

from gateway.cache.redis import RedisCache
from gateway.guarded import GuardedCache
from gateway.redis_checks import policy_warning, warn_on_evicting_policy
from gateway.settings import hash_key
from gateway.store import ErrorLog, StoreGuard, StoreUnavailable
from gateway.usage import Counts, Row, UsageRecord
from gateway.usage.buffer import UsageBuffer
from gateway.usage.redis import RedisUsage
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer
from tests.support.stack import Stack, own_stack

KEY = "sk-store-tenant-secret"
BODY = {"model": "text-embedding-3-small", "input": "hello"}


async def never() -> int:
    await asyncio.sleep(3600)
    return 0


async def refused() -> int:
    raise ConnectionRefusedError


async def test_a_timeout_opens_the_breaker_at_once() -> None:
    guard = StoreGuard("test", timeout=0.01, clock=FakeClock())
    with pytest.raises(StoreUnavailable):
        await guard.call(never)
    assert guard.state == "open"


async def test_a_cancellation_an_adapter_turned_into_its_error_stays_a_cancellation() -> None:
    async def converts_its_cancellation() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise StoreUnavailable("the client library's own error") from None
        return 0

    guard = StoreGuard("test", timeout=10, clock=FakeClock())
    task = asyncio.get_running_loop().create_task(guard.call(converts_its_cancellation))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert guard.state == "closed"


async def test_cheap_errors_open_it_after_the_threshold_and_then_nothing_is_asked() -> None:
    guard, asked = StoreGuard("test", timeout=1, failure_threshold=2, clock=FakeClock()), []

    async def counted() -> int:
        asked.append(1)
        raise ConnectionRefusedError

    for _ in range(4):
        with pytest.raises(StoreUnavailable):
            await guard.call(counted)
    assert (len(asked), guard.skipped) == (2, 2)


async def test_call_or_answers_the_fallback_when_the_store_cannot() -> None:
    guard = StoreGuard("test", timeout=1, clock=FakeClock())

    async def fallback() -> int:
        return 7

    assert await guard.call_or(refused, fallback) == 7


def test_errors_log_one_line_per_interval_with_a_count(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    errors = ErrorLog("cache write", interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        for _ in range(600):
            errors.failed(OSError())
            clock.advance(0.01)
        clock.advance(10)
        errors.failed(OSError())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "failed 600 time(s)" in lines[1]


@pytest.fixture
def keyed(own_redis: RedisServer) -> Iterator[Stack]:
    config = {
        "auth": {"keys": [{"name": "tenant", "sha256": hash_key(KEY)}]},
        "cache": {"timeout": 0.2, "breaker_cooldown": 30},
        "fetch": {"batch_window_ms": 0},
    }
    with own_stack(own_redis.url, config) as stack:
        yield stack


def timed_post(stack: Stack, n: int, client: httpx.Client) -> float:
    started = time.monotonic()
    response = client.post(
        f"{stack.base_url}/embeddings",
        json={**BODY, "input": f"text {n}"},
        headers={"x-api-key": KEY},
        timeout=10,
    )
    assert response.status_code == 200
    return time.monotonic() - started


@contextlib.contextmanager
def stalled_after_one_request(
    stack: Stack, server: RedisServer, client: httpx.Client
) -> Iterator[None]:
    """One request with Redis well, then Redis SIGSTOPped until the block ends."""
    timed_post(stack, 0, client)
    server.pause()
    try:
        yield
    finally:
        server.resume()


def test_a_stalled_redis_costs_one_timeout_per_breaker_window(
    keyed: Stack, own_redis: RedisServer
) -> None:
    with httpx.Client() as client, stalled_after_one_request(keyed, own_redis, client):
        seconds = [timed_post(keyed, n, client) for n in range(1, 11)]
    assert sum(s > 0.15 for s in seconds) == 1, seconds  # the first pays the 0.2 s timeout


def test_usage_answers_partial_or_503_while_redis_is_stalled(
    keyed: Stack, own_redis: RedisServer
) -> None:
    with httpx.Client() as client, stalled_after_one_request(keyed, own_redis, client):
        timed_post(keyed, 1, client)  # counted by this instance, maybe not written yet
        usage = client.get(f"{keyed.base_url}/usage", headers={"x-api-key": KEY})
    assert usage.status_code in (200, 503)
    if usage.status_code == 200:
        assert usage.json()["partial"] is True
    else:
        assert set(usage.json()["error"]) == {"message", "type", "param", "code"}


def test_usage_answers_503_when_it_has_nothing(keyed: Stack, own_redis: RedisServer) -> None:
    own_redis.kill()
    usage = httpx.get(f"{keyed.base_url}/usage", headers={"x-api-key": KEY}, timeout=10)
    assert usage.status_code == 503
    assert usage.json()["error"]["message"].startswith("Usage is temporarily unavailable")


async def fill(client: redis.asyncio.Redis) -> None:
    """2 MB of data, then a maxmemory of 1 MB: under noeviction every write is refused."""
    for n in range(20):
        await client.set(f"filler:{n}".encode(), b"x" * 100_000)
    await client.config_set("maxmemory", "1mb")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        await client.set(b"one-more", b"v")


@pytest.fixture
def full_redis() -> Iterator[RedisServer]:
    with RedisServer(extra_args=("--maxmemory-policy", "noeviction")) as s:
        yield s


async def test_refused_writes_log_once_and_open_only_the_write_breaker(
    full_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = redis.asyncio.from_url(full_redis.url)
    await fill(client)
    cache_log = logging.getLogger("gateway.cache")
    reads = StoreGuard("cache reads", timeout=0.5, logger=cache_log)
    writes = StoreGuard("cache writes", timeout=0.5, cooldown=30, logger=cache_log)
    cache = GuardedCache(RedisCache(client, ttl_seconds=60, timeout=0.5), reads, writes)
    with caplog.at_level(logging.WARNING, logger="gateway.cache"):
        for n in range(20):
            await cache.set_many([(f"k{n}".encode(), b"v")])
    assert len([r for r in caplog.records if r.name == "gateway.cache"]) == 1
    assert (writes.state, reads.state) == ("open", "closed")
    assert await cache.get_many([b"filler:0"]) == [b"x" * 100_000]  # reads still go through
    await client.aclose()


async def test_usage_counters_survive_eviction_pressure() -> None:
    args = ("--maxmemory", "8mb", "--maxmemory-policy", "volatile-lru")
    with RedisServer(extra_args=args) as server:
        client = redis.asyncio.from_url(server.url)
        usage = RedisUsage(client, "gw")
        row, counts = Row("tenant", "team", "m"), Counts(1, 1, 0, 5, 5)
        await usage.add({row: counts})
        cache = RedisCache(client, ttl_seconds=3600, timeout=1)
        for n in range(60):  # 30 MB of vectors through an 8 MB Redis
            await cache.set_many([(f"gw:v:{n}:{i}".encode(), b"x" * 50_000) for i in range(10)])
        assert (await usage.table())[row] == counts
        assert await client.dbsize() < 200  # vectors were evicted
        await client.aclose()


def test_only_policies_that_may_evict_counters_get_a_warning() -> None:
    assert policy_warning("allkeys-lru") is not None
    assert policy_warning("allkeys-lfu") is not None
    assert policy_warning("volatile-lru") is None
    assert policy_warning("noeviction") is None


async def test_startup_warns_once_about_an_evicting_policy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with RedisServer(extra_args=("--maxmemory-policy", "allkeys-lru")) as server:
        client = redis.asyncio.from_url(server.url)
        with caplog.at_level(logging.WARNING, logger="gateway.redis"):
            await warn_on_evicting_policy(client, 1.0)
        await client.aclose()
    assert [r.getMessage() for r in caplog.records if "volatile-lru" in r.getMessage()]


async def test_usage_refused_by_a_full_redis_still_counts_in_the_report(
    full_redis: RedisServer,
) -> None:
    client = redis.asyncio.from_url(full_redis.url)
    await fill(client)
    buffer = UsageBuffer(RedisUsage(client, "gw"))
    row, counts = Row("tenant", "team", "m"), Counts(1, 2, 0, 9, 9)
    buffer.add(UsageRecord(row, counts))
    assert (await buffer.table())[row] == counts  # pending, not lost
    await client.aclose()
