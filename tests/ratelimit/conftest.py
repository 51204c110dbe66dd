"""Fixtures: an injected clock, one real redis-server per session, and both limiters."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from gateway.ratelimit import Limiter
from gateway.ratelimit.memory import MemoryLimiter
from gateway.ratelimit.redis import RedisLimiter
from gateway.ratelimit.refusals import RefusalMemo
from gateway.redispipe import RedisPipe
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis", "redis-pipe", "redis-refusals-remembered"])
async def limiter(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    redis_client: redis.asyncio.Redis,
    redis_server: RedisServer,
) -> AsyncIterator[Limiter]:
    """The shipped Redis limiter runs its script on a pipelined connection and remembers
    refusals in front: it must decide exactly alike."""
    if request.param == "memory":
        yield MemoryLimiter(clock=clock)
        return
    pipe = None if request.param == "redis" else RedisPipe(redis_server.url, timeout=1.0)
    backend: Limiter = RedisLimiter(redis_client, clock=clock, pipe=pipe)  # never falls back
    if request.param == "redis-refusals-remembered":
        backend = RefusalMemo(backend, clock=clock)
    yield backend
    await backend.close()
