"""Fixtures: every ledger backend (memory, a real SQLite file, a real Redis) on one clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from gateway.budgets import Ledger
from gateway.budgets.memory import MemoryLedger
from gateway.budgets.redis import RedisLedger
from gateway.budgets.sqlite import SqliteLedger
from gateway.embedded import Database
from tests.ratelimit.conftest import make_client
from tests.support.clock import FakeClock
from tests.support.redis_server import RedisServer

# 2037-11-28 23:30 UTC, a Saturday: ahead of the real clock, as Redis expires keys by it
NOW = 2_143_063_800.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = make_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


def make_ledger(
    kind: str, clock: FakeClock, directory: Path, client: redis.asyncio.Redis
) -> Ledger:
    if kind == "memory":
        return MemoryLedger(clock)
    if kind == "sqlite":
        return SqliteLedger(Database(directory), clock)
    return RedisLedger(client)


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def ledger(
    request: pytest.FixtureRequest,
    clock: FakeClock,
    tmp_path: Path,
    redis_client: redis.asyncio.Redis,
) -> AsyncIterator[Ledger]:
    backend = make_ledger(request.param, clock, tmp_path, redis_client)
    yield backend
    await backend.close()
