"""Fixtures: an injected clock, one real redis-server per session, and both limiters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.ratelimit import Limiter
from gateway.ratelimit.memory import MemoryLimiter
from gateway.ratelimit.redis import RedisLimiter
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer


def make_client(url: str) -> redis.asyncio.Redis:
    # No client-side retries: a dead server must show up at once, not after backoff.
    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 0))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = make_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(
    request: pytest.FixtureRequest, clock: FakeClock, redis_client: redis.asyncio.Redis
) -> AsyncIterator[Limiter]:
    if request.param == "memory":
        yield MemoryLimiter(clock=clock)
        return
    backend = RedisLimiter(redis_client, clock=clock)  # raises, never falls back
    yield backend
    await backend.close()
