"""Fixtures: every spend-history backend (memory, a real SQLite file, a real Redis, a real
Redis Cluster)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from gateway.embedded import Database
from gateway.history import HistoryStore
from gateway.history.memory import MemoryHistory
from gateway.history.redis import RedisHistory
from gateway.history.sqlite import SqliteHistory
from tests.budgets.conftest import redis_backend
from tests.ratelimit.conftest import make_client
from tests.support.redis_server import RedisServer


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = make_client(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis", "cluster"])
async def history(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryStore]:
    store: HistoryStore
    if request.param == "memory":
        store = MemoryHistory()
    elif request.param == "sqlite":
        store = SqliteHistory(Database(tmp_path))
    else:
        client = await redis_backend(request, request.param)
        store = RedisHistory(client, retention_hours=24 * 90)
    yield store
    await store.close()
    if request.param in ("redis", "cluster"):
        await client.aclose()
