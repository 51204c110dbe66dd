"""Fixtures: every ledger backend (memory, a real SQLite file, a real Redis, a real Redis
Cluster) on one clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.budgets import Ledger
from gateway.budgets.book import BookStore
from gateway.budgets.memory import MemoryBook, MemoryLedger
from gateway.budgets.redis import RedisBook, RedisLedger
from gateway.budgets.sqlite import SqliteBook, SqliteLedger
from gateway.cache.redis import RedisClient
from gateway.embedded import Database
from tests.ratelimit.conftest import make_client
from tests.support.clock import FakeClock
from tests.support.redis_cluster import RedisCluster
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


async def redis_backend(request: pytest.FixtureRequest, kind: str) -> RedisClient:
    """A flushed client of the session's Redis, or of its Redis Cluster."""
    if kind == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client: RedisClient = make_client(server.url)
        await client.flushdb()
        return client
    nodes: RedisCluster = request.getfixturevalue("cluster_nodes")
    nodes.flush()
    return ClusterClient.from_url(nodes.url.replace("+cluster", ""), retry=Retry(NoBackoff(), 0))


@pytest.fixture(params=["memory", "sqlite", "redis", "cluster"])
async def ledger(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[Ledger]:
    backend: Ledger
    if request.param == "memory":
        backend = MemoryLedger(clock)
    elif request.param == "sqlite":
        backend = SqliteLedger(Database(tmp_path), clock)
    else:
        client = await redis_backend(request, request.param)
        backend = RedisLedger(client)
    yield backend
    await backend.close()
    if request.param in ("redis", "cluster"):
        await client.aclose()


@pytest.fixture(params=["memory", "sqlite", "redis", "cluster"])
async def book_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BookStore]:
    store: BookStore
    if request.param == "memory":
        store = MemoryBook()
    elif request.param == "sqlite":
        store = SqliteBook(Database(tmp_path))
    else:
        client = await redis_backend(request, request.param)
        store = RedisBook(client)
    yield store
    await store.close()
    if request.param in ("redis", "cluster"):
        await client.aclose()
