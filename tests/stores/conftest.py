"""Every backend of the cache, usage and key stores, for one behaviour suite each: memory, the
embedded SQLite file, a real Redis and a real Redis Cluster (where redis-server can run one)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.apikeys import KeyStore
from gateway.apikeys.memory import MemoryKeys
from gateway.apikeys.redis import RedisKeys
from gateway.apikeys.sqlite import SqliteKeys
from gateway.cache import Cache
from gateway.cache.memory import MemoryCache
from gateway.cache.redis import RedisCache, RedisClient
from gateway.cache.sqlite import SqliteCache
from gateway.embedded import Database
from gateway.usage import UsageStore
from gateway.usage.memory import MemoryUsage
from gateway.usage.redis import RedisUsage
from gateway.usage.sqlite import SqliteUsage
from tests.support.clock import FakeClock
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

BACKENDS = ["memory", "sqlite", "redis", "cluster"]
CACHE_TTL = 3600


@pytest.fixture
async def redis_client(
    request: pytest.FixtureRequest, backend_name: str
) -> AsyncIterator[RedisClient | None]:
    """A flushed client for the redis and cluster backends, None for the others."""
    options: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 1.0}
    client: RedisClient
    if backend_name == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.asyncio.Redis.from_url(server.url, **options)
    elif backend_name == "cluster":
        nodes: RedisCluster = request.getfixturevalue("cluster_nodes")
        nodes.flush()
        client = ClusterClient.from_url(nodes.url.replace("+cluster", ""), **options)
    else:
        yield None
        return
    if backend_name == "redis":
        await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "data")
    yield db
    db.close()


@pytest.fixture
def usage_store(
    backend_name: str, redis_client: RedisClient | None, database: Database
) -> UsageStore:
    if redis_client is not None:
        return RedisUsage(redis_client, "test")
    return SqliteUsage(database) if backend_name == "sqlite" else MemoryUsage()


@pytest.fixture
def key_store(backend_name: str, redis_client: RedisClient | None, database: Database) -> KeyStore:
    if redis_client is not None:
        return RedisKeys(redis_client, "test")
    return SqliteKeys(database) if backend_name == "sqlite" else MemoryKeys()


@pytest.fixture
def cache_clock() -> FakeClock:
    """Time for the in-process and SQLite caches (Redis keeps its own)."""
    return FakeClock(1_800_000_000.0)


@pytest.fixture
async def cache_store(
    backend_name: str, redis_client: RedisClient | None, tmp_path: Path, cache_clock: FakeClock
) -> AsyncIterator[Cache]:
    cache: Cache
    if redis_client is not None:
        cache = RedisCache(redis_client, ttl_seconds=CACHE_TTL, timeout=1.0)
    elif backend_name == "sqlite":
        cache = SqliteCache(
            tmp_path / "cache",
            max_bytes=1 << 20,
            ttl_seconds=CACHE_TTL,
            hot_entries=10,
            timeout=5.0,
            clock=cache_clock,
        )
    else:
        cache = MemoryCache(max_entries=1000, ttl_seconds=CACHE_TTL, clock=cache_clock)
    yield cache
    if backend_name == "sqlite":  # a Redis client is closed by its own fixture
        await cache.close()
