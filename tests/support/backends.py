"""One store of each backend for the behaviour suites: memory, a real SQLite file, a real Redis
and a real Redis Cluster (the session's servers, flushed first)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.cache.redis import RedisClient
from gateway.embedded import Database
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer

BACKENDS = ["memory", "sqlite", "redis", "cluster"]


class Closable(Protocol):
    async def close(self) -> None: ...


S = TypeVar("S", bound=Closable)


def make_client(url: str) -> redis.asyncio.Redis:
    # No client-side retries: a dead server must show up at once, not after backoff.
    return redis.asyncio.Redis.from_url(url, retry=Retry(NoBackoff(), 0))


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


@dataclass(frozen=True, slots=True)
class Builders(Generic[S]):
    """How a store of each backend is made (Redis and Cluster share one, given the client)."""

    memory: Callable[[], S]
    sqlite: Callable[[Database], S]
    redis: Callable[[Any], S]


@contextlib.asynccontextmanager
async def store_on(
    request: pytest.FixtureRequest, tmp_path: Path, builders: Builders[S]
) -> AsyncIterator[S]:
    """The store of the backend `request.param` names, closed after."""
    kind = str(request.param)
    if kind == "memory":
        store = builders.memory()
    elif kind == "sqlite":
        store = builders.sqlite(Database(tmp_path))
    else:
        client = await redis_backend(request, kind)
        store = builders.redis(client)
    try:
        yield store
    finally:
        await store.close()
        if kind in ("redis", "cluster"):
            await client.aclose()
