"""Fixtures: every spend-history backend (memory, a real SQLite file, a real Redis, a real
Redis Cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from gateway.history import HistoryStore
from gateway.history.memory import MemoryHistory
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from tests.ratelimit.conftest import make_client
from tests.support.backends import BACKENDS, Builders, store_on
from tests.support.redis_server import RedisServer


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = make_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=BACKENDS)
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    builders: Builders[HistoryStore] = Builders(
        MemoryHistory, SqliteHistory, lambda client: RedisHistory(client, retention_hours=24 * 90)
    )
    async with store_on(request, tmp_path, builders) as store:
        yield store
